import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type CdcProcess, runCli, startCdc } from "../harness/cdc.js";
import { waitFor } from "../harness/ports.js";
import { exited } from "../harness/processes.js";
import { intArg, rpcClient, stringArg } from "../snapshot/support.js";
import { useClusterAndBroker } from "../harness/servers.js";

/**
 * Issue 14 item 1, the bounds on what one RPC caller can make tera-cdc do: a statement that
 * waits too long ends at the statement timeout (reported as a code, not the database's text),
 * only a few snapshots run at once, and `tera-cdc snapshot --where` sends structure, not SQL.
 */

const [pgServer, broker] = useClusterAndBroker();
let cdc: CdcProcess;
let rpc: Awaited<ReturnType<typeof rpcClient>>;

beforeAll(async () => {
  await pgServer.query(`
    CREATE TABLE t_devices (id_device int PRIMARY KEY, id_site int NOT NULL, device_name text);
    INSERT INTO t_devices SELECT g, g % 5, 'dev' || g FROM generate_series(1, 500) g;
    CREATE TABLE t_big (id int PRIMARY KEY, val text);
    INSERT INTO t_big SELECT g, md5(g::text) FROM generate_series(1, 60000) g;`);
  cdc = await startCdc({
    databaseUrl: pgServer.url,
    mqttUrl: broker.url,
    args: ["--tables", "t_devices,t_big", "--slot", "lim_slot", "--publication", "lim_pub", "--rpc", "--snapshot-chunk-size", "16", "--snapshot-statement-timeout", "2", "--snapshot-max-running", "2"],
  });
  await cdc.waitForLog(/listening for RPC requests/);
  rpc = await rpcClient(broker.url);
}, 90_000);

afterAll(async () => {
  await rpc?.close();
  await cdc?.stop();
});

describe("bounds on a snapshot request", () => {
  it("a statement blocked by a lock ends at the statement timeout, reported as 57014 with a reference", async () => {
    const holder = await pgServer.connect();
    try {
      await holder.query("BEGIN");
      await holder.query("LOCK TABLE t_devices IN ACCESS EXCLUSIVE MODE");
      const started = Date.now();
      const reply = await rpc.call("snapshot", [stringArg("device")]);
      expect(Date.now() - started).toBeLessThan(25_000);
      expect(reply.return_value).toBeUndefined();
      expect(reply.error).toMatch(/^snapshot failed \(57014, reference ([0-9a-f]{8}) in tera-cdc's log\)$/);
      expect(reply.error).not.toMatch(/canceling statement/);
      const reference = /reference ([0-9a-f]{8})/.exec(reply.error!)![1]!;
      const line = await cdc.waitForLog(new RegExp(`.*${reference}.*`));
      expect(line).toMatch(/statement timeout/);
    } finally {
      await holder.query("ROLLBACK").catch(() => {});
      await holder.end();
    }
    const after = await pgServer.query("SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = 'tera-cdc snapshot' AND state = 'active' AND pid <> pg_backend_pid()");
    expect(after.rows[0].n).toBe(0);
  }, 60_000);

  it("refuses a third snapshot while two run", async () => {
    const first = await rpc.call("snapshot", [stringArg("t_big")]);
    const second = await rpc.call("snapshot", [stringArg("t_big")]);
    expect(typeof first.return_value, JSON.stringify(first)).toBe("number");
    expect(typeof second.return_value).toBe("number");
    const third = await rpc.call("snapshot", [stringArg("device")]);
    expect(third.return_value).toBeUndefined();
    expect(third.error).toMatch(/2 snapshots are running, the most at once \(setting snapshot-max-running\)/);
    for (const id of [first.return_value, second.return_value]) expect((await rpc.call("snapshot_cancel", [intArg(id)])).return_value).toBe(true);
    await waitFor("both to stop", async () => {
      const running = await pgServer.query("SELECT count(*)::int AS n FROM tera_cdc.snapshots WHERE status = 'running'");
      return running.rows[0].n === 0;
    }, 60_000, 100);
    // Once they have ended, a new one is taken again.
    const fourth = await waitFor("room for a snapshot", async () => {
      const reply = await rpc.call("snapshot", [stringArg("device")]);
      return typeof reply.return_value === "number" ? reply : undefined;
    }, 30_000, 200);
    expect(typeof fourth.return_value).toBe("number");
  }, 120_000);

  it("tera-cdc snapshot --where sends a structured filter: only matching rows; SQL is refused with exit 2", async () => {
    const ok = runCli(["snapshot", "device", "--mqtt-url", broker.url, "--where", "id_site = 3 and id_device in (3, 8, 13, 14) and device_name is not null", "--json"]);
    expect(await exited(ok.child, 60_000), ok.output().stderr).toBe(0);
    const report = JSON.parse(ok.output().stdout.trim());
    expect(report).toMatchObject({ status: "done", rows: 3, where: "id_site = 3 and id_device in (3, 8, 13, 14) and device_name is not null" });
    const stored = await pgServer.query("SELECT filter FROM tera_cdc.snapshots WHERE id = $1", [report.id]);
    expect(stored.rows[0].filter).toEqual([
      { column: "id_site", op: "=", value: 3 },
      { column: "id_device", op: "in", value: [3, 8, 13, 14] },
      { column: "device_name", op: "is not null" },
    ]);
    for (const where of ["id_site = 3 or 1 = 1", "id_device = 1 AND CAST((SELECT 1) AS int) = 1", "id_site = pg_sleep(25)"]) {
      const bad = runCli(["snapshot", "device", "--mqtt-url", broker.url, "--where", where]);
      expect(await exited(bad.child, 30_000), where).toBe(2);
      const stderr = bad.output().stderr.trim();
      expect(stderr.split("\n")).toHaveLength(1);
      expect(stderr).toMatch(/setting where: /);
    }
    // A column that exists but is not published, or not at all: refused by tera-cdc, exit 1.
    const unknown = runCli(["snapshot", "device", "--mqtt-url", broker.url, "--where", "secret_column = 1"]);
    expect(await exited(unknown.child, 30_000)).toBe(1);
    expect(unknown.output().stderr).toMatch(/column "secret_column" is not one of the model's published columns: device_name, id_device, id_site/);
  }, 120_000);
});
