import { readFileSync } from "node:fs";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { runCli, startCdc } from "../harness/cdc.js";
import { waitFor } from "../harness/ports.js";
import { exited } from "../harness/processes.js";
import { intArg, rpcClient, stringArg } from "../snapshot/support.js";
import { useClusterAndBroker } from "../harness/servers.js";

const SQL_DIR = join(import.meta.dirname, "..", "..", "sql");

const [postgres, broker] = useClusterAndBroker();
/** The database URL as the role sql/prepare-database.sql creates (the test cluster trusts local logins). */
let roleUrl: string;

beforeAll(async () => {
  for (const file of ["opentera-schema.sql", "opentera-sample-data.sql", "prepare-database.sql"]) await postgres.query(readFileSync(join(SQL_DIR, file), "utf8"));
  // What a DBA of a real server does too: PUBLIC may not create in public (PostgreSQL 15's default).
  await postgres.query("REVOKE CREATE ON SCHEMA public FROM PUBLIC; REVOKE CREATE, TEMPORARY ON DATABASE postgres FROM PUBLIC");
  const url = new URL(postgres.url);
  url.username = "tera_cdc";
  url.password = "";
  roleUrl = url.toString();
}, 120_000);

async function check(args: string[] = []): Promise<{ code: number | null; stdout: string }> {
  const { child, output } = runCli(["check", "--database-url", roleUrl, "--slot", "least_slot", ...args]);
  const code = await exited(child, 60_000);
  return { code, stdout: output().stdout + output().stderr };
}

describe("the role sql/prepare-database.sql creates", () => {
  it("passes check", async () => {
    const { code, stdout } = await check();
    expect(stdout).not.toMatch(/^FAIL|^WARN/m);
    expect(code, stdout).toBe(0);
  });

  it("runs the opentera preset without an ERROR, and takes a snapshot over RPC", async () => {
    const cdc = await startCdc({ databaseUrl: roleUrl, mqttUrl: broker.url, args: ["--preset", "opentera", "--slot", "least_slot", "--log-level", "info", "--rpc"] });
    const rpc = await rpcClient(broker.url);
    try {
      await cdc.waitForLog(/listening for RPC requests/, 60_000);
      const started = await rpc.call("snapshot", [stringArg("site")]);
      expect(started.error).toBeUndefined();
      const id = started.return_value as number;
      const done = await waitFor("the snapshot to end", async () => {
        const reply = await rpc.call("snapshot_status", [intArg(id)]);
        return reply.return_value?.status !== "running" ? reply.return_value : undefined;
      }, 60_000, 300);
      expect(done.status).toBe("done");
      expect(cdc.logs()).not.toMatch(/"level":(50|60)|\bERROR\b/);
      expect(await cdc.stop()).toBe(0);
    } catch (error) {
      throw new Error(`${(error as Error).message}\n${cdc.logs().slice(-3000)}`);
    } finally {
      await rpc.close();
      if (cdc.child.exitCode === null) await cdc.kill();
    }
  }, 180_000);

  it("check names every missing privilege with the line that fixes it", async () => {
    // The schema and table as an owner other than the role would leave them, without grants.
    await postgres.query(`REVOKE SELECT ON t_devices FROM tera_cdc;
      ALTER SCHEMA tera_cdc OWNER TO postgres; ALTER TABLE tera_cdc.snapshots OWNER TO postgres;
      REVOKE ALL ON SCHEMA tera_cdc FROM tera_cdc; REVOKE ALL ON tera_cdc.snapshots FROM tera_cdc; REVOKE ALL ON SEQUENCE tera_cdc.snapshots_id_seq FROM tera_cdc`);
    try {
      const { code, stdout } = await check();
      expect(code).toBe(1);
      expect(stdout).toMatch(/FAIL\s+table public\.t_devices.*\n.*fix: GRANT SELECT ON "public"\."t_devices" TO "tera_cdc";/);
      expect(stdout).toMatch(/FAIL\s+snapshot state.*\n.*fix: GRANT USAGE ON SCHEMA tera_cdc TO "tera_cdc"; GRANT SELECT, INSERT, UPDATE ON tera_cdc.snapshots TO "tera_cdc"; GRANT USAGE ON SEQUENCE tera_cdc.snapshots_id_seq TO "tera_cdc";/);
    } finally {
      // The fix lines, as check printed them, then the table back to its role.
      await postgres.query(`GRANT SELECT ON t_devices TO tera_cdc; GRANT USAGE ON SCHEMA tera_cdc TO "tera_cdc";
        GRANT SELECT, INSERT, UPDATE ON tera_cdc.snapshots TO "tera_cdc"; GRANT USAGE ON SEQUENCE tera_cdc.snapshots_id_seq TO "tera_cdc"`);
    }
    const { code, stdout } = await check();
    expect(code, stdout).toBe(0);
  });
});
