/**
 * `npm run test:versions`: the core of the suite against each supported PostgreSQL major version,
 * one version after the other (TERA_CDC_TEST_PG=N makes test/harness/postgres.ts start clusters
 * from node_modules/pgN), then the checks of test/versions (PostgreSQL 13 refused, failover, decoding on a
 * standby), which pick their versions themselves. Prints one line per version with its time and
 * exits 1 if any failed.
 *
 *   npm run test:versions                 the core on every version, then test/versions
 *   npm run test:versions -- 17 18        the core on these only, then test/versions
 */
import { spawnSync } from "node:child_process";
import { join } from "node:path";

const SUPPORTED = [14, 15, 16, 17, 18];
/** The core: bridge tests, values, restart durability, snapshot consistency, walsender kill and PostgreSQL restart. */
const CORE = [
  "test/integration/run.test.ts",
  "test/integration/types.test.ts",
  "test/oracle/values.test.ts",
  "test/faults/restart.test.ts",
  "test/faults/database.test.ts",
  "test/faults/kill-restart.test.ts",
  "test/snapshot/consistency.test.ts",
];
/** Tests that start the versions they are about (13's refusal, failover, standby decoding). */
const PER_VERSION = ["test/versions"];

const root = join(import.meta.dirname, "..");
const asked = process.argv.slice(2).map(Number);
const versions = asked.length > 0 ? asked : SUPPORTED;
const bad = versions.filter((v) => !SUPPORTED.includes(v));
if (bad.length > 0) {
  process.stderr.write(`test:versions: ${bad.join(", ")} not supported: choose among ${SUPPORTED.join(", ")}\n`);
  process.exit(2);
}

function vitest(files: string[], env: Record<string, string>): boolean {
  const run = spawnSync(process.execPath, [join(root, "node_modules", "vitest", "vitest.mjs"), "run", ...files, "--maxWorkers=2"], {
    cwd: root,
    env: { ...process.env, ...env },
    stdio: "inherit",
  });
  return run.status === 0;
}

const results: string[] = [];
let failed = false;
for (const version of versions) {
  const started = Date.now();
  const ok = vitest(CORE, { TERA_CDC_TEST_PG: String(version) });
  failed ||= !ok;
  results.push(`PostgreSQL ${version}: ${ok ? "passed" : "FAILED"} in ${Math.round((Date.now() - started) / 1000)} s`);
}
{
  const started = Date.now();
  const ok = vitest(PER_VERSION, { TERA_CDC_TEST_VERSIONS: "1" });
  failed ||= !ok;
  results.push(`test/versions (13 refused, failover, standby): ${ok ? "passed" : "FAILED"} in ${Math.round((Date.now() - started) / 1000)} s`);
}
process.stdout.write(`\n${results.join("\n")}\n`);
process.exit(failed ? 1 : 0);
