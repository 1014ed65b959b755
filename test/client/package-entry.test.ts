import { execFileSync } from "node:child_process";
import { join } from "node:path";
import { describe, expect, it } from "vitest";

const ROOT = join(import.meta.dirname, "..", "..");

describe('import ... from "tera-cdc"', () => {
  it("builds to dist/ and loads in plain Node (no tsx) with the client API and the message library", () => {
    execFileSync(process.execPath, [join(ROOT, "node_modules", "typescript", "bin", "tsc"), "-p", "tsconfig.build.json"], { cwd: ROOT, stdio: "pipe" });
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
});
