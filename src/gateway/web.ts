import { readFileSync } from "node:fs";
import { join } from "node:path";
import { optionalPackage } from "../optional.js";

export interface WebAsset {
  readonly contentType: string;
  readonly body: Uint8Array | string;
}

export type WebAssets = ReadonlyMap<string, WebAsset>;

/** The live page's folder in the repository. */
export const WEB_DIR = join(import.meta.dirname, "..", "..", "web");

/**
 * Builds the live page at start-up, in memory: web/index.html and web/favicon.svg as they are, and web/live.ts bundled
 * with the project's message code (src/messages, ts-proto + @bufbuild/protobuf) into one ES
 * module, /live.js. Nothing is written to disk, so the gateway also runs from a read-only checkout.
 */
export async function buildWebAssets(dir = WEB_DIR): Promise<WebAssets> {
  // An optional dependency (package.json): loaded only here, so a consumer of the library never installs or loads it.
  const { build } = await optionalPackage<typeof import("esbuild")>("esbuild", "the gateway's live page");
  const result = await build({
    entryPoints: [join(dir, "live.ts")],
    bundle: true,
    format: "esm",
    platform: "browser",
    target: "es2022",
    write: false,
    minify: false,
    sourcemap: "inline",
    logLevel: "silent",
  });
  const js = result.outputFiles[0]!.contents;
  return new Map<string, WebAsset>([
    ["/index.html", { contentType: "text/html; charset=utf-8", body: readFileSync(join(dir, "index.html"), "utf8") }],
    ["/live.js", { contentType: "text/javascript; charset=utf-8", body: js }],
    // Browsers ask for /favicon.ico whatever the page links; both names serve the same icon.
    ["/favicon.svg", { contentType: "image/svg+xml", body: readFileSync(join(dir, "favicon.svg"), "utf8") }],
    ["/favicon.ico", { contentType: "image/svg+xml", body: readFileSync(join(dir, "favicon.svg"), "utf8") }],
  ]);
}
