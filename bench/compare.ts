/**
 * `npm run bench:compare -- REF [--rounds N] [--same-harness] [bench flags...]`
 *
 * Before and after in one run, on the same machine: builds the commit REF (git archive into a
 * temporary folder, this checkout's node_modules) and runs `bench/bench.ts` of REF and of this
 * checkout alternately, N rounds (default 2), each with the given bench flags (e.g. `--quick
 * --only bulk,pgbench`). Alternating spreads the shared machine's noise over both sides. Prints
 * every figure's median before and after and the change, and marks a figure more than 5 % worse.
 * Figures are printed, never asserted (the machine is shared).
 *
 * With `--same-harness`, both sides run this checkout's bench/bench.ts, the "before" side against
 * REF's built `bin/tera-cdc.js` (TERA_CDC_BENCH_BIN): the product changes and the instrument does
 * not (the bench's own subscriber, for one, got cheaper in issue 18, which would otherwise count as
 * a gain of the product). REF's command must take the flags the current bench passes.
 */
import { execFileSync, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import type { Figure } from "./report.js";

const HERE = resolve(import.meta.dirname, "..");
/** Units where more is better; for the rest (ms, MB, bytes) less is better. */
const HIGHER_IS_BETTER = new Set(["changes/s", "changes/core-s", "msg/s", "msg/core-s", "tx/s", "rows/s", "deliveries/s"]);
const TOLERANCE = 0.05;

function parse(argv: string[]): { ref: string; rounds: number; sameHarness: boolean; benchArgs: string[] } {
  const [ref, ...rest] = argv;
  if (!ref || ref.startsWith("-")) throw new Error("usage: npm run bench:compare -- REF [--rounds N] [bench flags]: give the commit to compare with (e.g. main~3)");
  let rounds = 2;
  let sameHarness = false;
  const benchArgs: string[] = [];
  for (let i = 0; i < rest.length; i++) {
    if (rest[i] === "--rounds") {
      rounds = Number(rest[++i]);
      if (!Number.isInteger(rounds) || rounds < 1) throw new Error("--rounds needs a whole number >= 1");
    } else if (rest[i] === "--same-harness") sameHarness = true;
    else benchArgs.push(rest[i]!);
  }
  return { ref, rounds, sameHarness, benchArgs };
}

/** REF's files, built, with this checkout's node_modules. */
function checkout(ref: string): string {
  const dir = mkdtempSync(join(tmpdir(), "tera-cdc-bench-before-"));
  const commit = execFileSync("git", ["rev-parse", "--verify", `${ref}^{commit}`], { cwd: HERE, encoding: "utf8" }).trim();
  execFileSync("sh", ["-c", `git archive ${commit} | tar -x -C ${JSON.stringify(dir)}`], { cwd: HERE });
  symlinkSync(join(HERE, "node_modules"), join(dir, "node_modules"));
  execFileSync(process.execPath, [join(HERE, "node_modules", "typescript", "bin", "tsc"), "-p", "tsconfig.build.json"], { cwd: dir, stdio: "inherit" });
  process.stderr.write(`compare: ${ref} (${commit.slice(0, 10)}) built in ${dir}\n`);
  return dir;
}

/** One bench run: `harness`'s bench/bench.ts, with `bin` as the command under test when given. */
function benchOnce(harness: string, bin: string | null, benchArgs: string[], jsonFile: string): Promise<Figure[]> {
  return new Promise((resolvePromise, reject) => {
    const env = bin === null ? process.env : { ...process.env, TERA_CDC_BENCH_BIN: bin };
    const child = spawn(process.execPath, [join(HERE, "node_modules", "tsx", "dist", "cli.mjs"), "bench/bench.ts", ...benchArgs, "--json", jsonFile], { cwd: harness, env, stdio: ["ignore", "inherit", "inherit"] });
    child.on("error", reject);
    child.on("close", (code) => {
      try {
        const report = JSON.parse(readFileSync(jsonFile, "utf8")) as { figures: Figure[]; error: string | null };
        if (code !== 0 || report.error) process.stderr.write(`compare: bench in ${harness} ended with ${code}: ${report.error ?? ""}\n`);
        resolvePromise(report.figures);
      } catch (error) {
        reject(new Error(`bench in ${harness} exited with ${code} and wrote no report: ${(error as Error).message}`));
      }
    });
  });
}

function median(values: number[]): number {
  const sorted = values.filter(Number.isFinite).sort((a, b) => a - b);
  if (sorted.length === 0) return Number.NaN;
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

async function main(): Promise<void> {
  const { ref, rounds, sameHarness, benchArgs } = parse(process.argv.slice(2));
  const before = checkout(ref);
  const samples = new Map<string, { figure: Figure; before: number[]; after: number[] }>();
  const reports = mkdtempSync(join(tmpdir(), "tera-cdc-bench-compare-"));
  try {
    for (let round = 0; round < rounds; round++) {
      // Alternate which side goes first, so a drift in the machine's load hits both alike.
      const order: ["before" | "after", string][] = round % 2 === 0 ? [["before", before], ["after", HERE]] : [["after", HERE], ["before", before]];
      for (const [side, dir] of order) {
        process.stderr.write(`compare: round ${round + 1}/${rounds}, ${side}\n`);
        // --same-harness: this checkout's bench on both sides, the "before" side pointed at REF's command.
        const bin = sameHarness && side === "before" ? join(before, "bin", "tera-cdc.js") : null;
        for (const f of await benchOnce(sameHarness ? HERE : dir, bin, benchArgs, join(reports, `${side}-${round}.json`))) {
          const entry = samples.get(f.id) ?? { figure: f, before: [], after: [] };
          entry[side].push(...f.samples);
          samples.set(f.id, entry);
        }
      }
    }
  } finally {
    rmSync(before, { recursive: true, force: true });
  }
  const rows = [...samples.values()].map(({ figure, before: b, after: a }) => {
    const was = median(b);
    const now = median(a);
    const change = (now - was) / was;
    const worse = HIGHER_IS_BETTER.has(figure.unit) ? change < -TOLERANCE : change > TOLERANCE;
    return { label: figure.label, unit: figure.unit, was, now, change, worse, n: `${b.length}/${a.length}` };
  });
  const number = (v: number) => (Number.isFinite(v) ? v.toLocaleString("en-US", { maximumFractionDigits: v < 100 ? 1 : 0 }) : "-");
  const lines = [
    `| figure | unit | before (${ref}) | after | change | samples | |`,
    "|---|---|---:|---:|---:|---:|---|",
    ...rows.map((r) => `| ${r.label} | ${r.unit} | ${number(r.was)} | ${number(r.now)} | ${Number.isFinite(r.change) ? `${(r.change * 100).toFixed(1)} %` : "-"} | ${r.n} | ${r.worse ? "worse > 5 %" : ""} |`),
  ];
  const harness = sameHarness ? "both sides measured by this checkout's bench (--same-harness)" : "each side measured by its own bench";
  process.stdout.write(`\n${lines.join("\n")}\n\nmedians over ${rounds} alternating round(s), ${harness}; samples before/after; reports in ${reports}\n`);
}

await main();
