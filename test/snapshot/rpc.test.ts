import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type CdcProcess, startCdc } from "../harness/cdc.js";
import { waitFor } from "../harness/ports.js";
import { applyStream, intArg, rpcClient, stringArg } from "./support.js";
import { useClusterAndBroker } from "../harness/servers.js";

const [pgServer, broker] = useClusterAndBroker();
let cdc: CdcProcess;
let rpc: Awaited<ReturnType<typeof rpcClient>>;

beforeAll(async () => {
  await pgServer.query(`
    CREATE TABLE snap_where (id int PRIMARY KEY, site int NOT NULL, val text);
    INSERT INTO snap_where SELECT g, g % 5, 'v' || g FROM generate_series(1, 1000) g;
    CREATE TABLE snap_pair (a int, b text, v int NOT NULL, api_token text, PRIMARY KEY (a, b));
    INSERT INTO snap_pair SELECT g % 37, 'k' || (g / 37), g, 'secret' FROM generate_series(1, 3000) g;
    CREATE TABLE snap_big (id int PRIMARY KEY, val text);
    INSERT INTO snap_big SELECT g, md5(g::text) FROM generate_series(1, 50000) g;`);
  cdc = await startCdc({
    databaseUrl: pgServer.url,
    mqttUrl: broker.url,
    args: ["--tables", "snap_where,snap_pair,snap_big", "--slot", "rpc_slot", "--publication", "rpc_pub", "--snapshot-chunk-size", "128", "--rpc"],
  });
  await cdc.waitForLog(/listening for RPC requests/);
  rpc = await rpcClient(broker.url);
}, 90_000);

afterAll(async () => {
  await rpc?.close();
  await cdc?.stop();
});

async function waitForEnd(id: number, timeoutMs = 120_000): Promise<Record<string, any>> {
  return waitFor(`snapshot ${id} to end`, async () => {
    const reply = await rpc.call("snapshot_status", [intArg(id)]);
    return reply.return_value?.status !== "running" ? reply.return_value : undefined;
  }, timeoutMs, 300);
}

describe("RPC on module/tera-cdc/rpc", () => {
  it("answers status with the slot, the confirmed LSN, the lag and the publication's tables", async () => {
    const reply = await rpc.call("status");
    expect(reply.error).toBeUndefined();
    expect(reply.return_value).toMatchObject({ slot: "rpc_slot", publication: "rpc_pub", state: "streaming" });
    expect(reply.return_value.tables).toEqual(["public.snap_big", "public.snap_pair", "public.snap_where"]);
    expect(reply.return_value.confirmedLsn).toMatch(/^[0-9A-F]+\/[0-9A-F]+$/);
    expect(typeof reply.return_value.lagSeconds).toBe("number");
    expect(Array.isArray(reply.return_value.snapshots)).toBe(true);
  });

  it("refuses a wrong method or argument with an error reply and keeps serving", async () => {
    const cases: [string, ReturnType<typeof stringArg>[], RegExp][] = [
      ["drop_everything", [], /unknown method "drop_everything": available are status\(\), snapshot\(model, \[filter\]\)/],
      ["snapshot", [], /argument 1 \(model\) is missing/],
      ["snapshot", [intArg(4)], /argument 1 \(model\) must be a non-empty string_value/],
      ["snapshot", [stringArg("t_nothing")], /unknown model "t_nothing": published models are snap_big, snap_pair, snap_where/],
      ["snapshot", [stringArg("snap_where"), stringArg("1=1) UNION SELECT 1, 1, current_user --")], /the filter is not JSON/],
      ["snapshot", [stringArg("snap_where"), stringArg('[{"column":"no_such_column","op":"=","value":1}]')], /column "no_such_column" is not one of the model's published columns: id, site, val/],
      ["snapshot", [stringArg("snap_pair"), stringArg('[{"column":"api_token","op":"=","value":"secret"}]')], /column "api_token" is not one of the model's published columns/],
      ["snapshot", [stringArg("snap_where"), stringArg('[{"column":"site","op":"like","value":"1"}]')], /op must be one of/],
      ["snapshot", [stringArg("snap_where"), stringArg('[{"column":"site","op":"=","value":"abc"}]')], /a value of the filter does not fit its column's type \(22P02\)/],
      ["snapshot", [stringArg("snap_where"), stringArg("x"), stringArg("y")], /too many arguments/],
      ["snapshot_status", [stringArg("abc")], /argument 1 \(id\) must be a whole number/],
      ["snapshot_status", [intArg(987654)], /unknown snapshot id 987654/],
      ["snapshot_cancel", [], /argument 1 \(id\) is missing/],
    ];
    for (const [method, args, error] of cases) {
      const reply = await rpc.call(method, args);
      expect(reply.return_value, method).toBeUndefined();
      expect(reply.error, `${method}(${JSON.stringify(args.map((a) => a.argValue), (_k, v) => (typeof v === "bigint" ? String(v) : v))})`).toMatch(error);
    }
    // Bytes that are no RPCMessage are logged and dropped, never a crash.
    await rpc.client.publishAsync("module/tera-cdc/rpc", Buffer.from("not protobuf at all"), { qos: 1 });
    expect((await rpc.call("status")).return_value.slot).toBe("rpc_slot");
    expect(cdc.child.exitCode).toBeNull();
  });

  it("answers on the MQTT form of a dotted OpenTera reply_to topic", async () => {
    const reply = await rpc.call("status", [], "tera-cdc.cli.dotted.replies");
    expect(reply.return_value.slot).toBe("rpc_slot");
  });
});

describe("snapshots", () => {
  it("with a where filter publishes only the matching rows, as DB_UPDATE events marked snapshot=<id>", async () => {
    const state = await applyStream(broker.url, "snap_where", (o) => String(o.id));
    try {
      const filter = [{ column: "site", op: "=", value: 2 }, { column: "id", op: "<>", value: 12 }, { column: "val", op: "is not null" }];
      const reply = await rpc.call("snapshot", [stringArg("snap_where"), stringArg(JSON.stringify(filter))]);
      const id = reply.return_value as number;
      expect(typeof id).toBe("number");
      const report = await waitForEnd(id);
      expect(report).toMatchObject({ status: "done", rows: 199, where: "site = 2 and id <> 12 and val is not null", model: "snap_where", table: "public.snap_where" });
      await waitFor("end marker", () => state.markers.some((m) => m.kind === "end"));
      expect(state.rows.size).toBe(199);
      for (const row of state.rows.values()) expect(row.site).toBe(2);
      expect(state.rows.has("12")).toBe(false);
      expect(state.rows.get("7")).toEqual({ id: 7, site: 2, val: "v7" });
      expect(state.markers.map((m) => [m.kind, m.snapshot])).toEqual([["start", String(id)], ["end", String(id)]]);
    } finally {
      await state.close();
    }
  }, 150_000);

  it("pages through a composite primary key: every row exactly once, secret columns withheld", async () => {
    const seen: string[] = [];
    const state = await applyStream(broker.url, "snap_pair", (o) => {
      const key = `${o.a}/${o.b}`;
      seen.push(key);
      return key;
    });
    try {
      const id = (await rpc.call("snapshot", [stringArg("snap_pair")])).return_value as number;
      const report = await waitForEnd(id);
      expect(report).toMatchObject({ status: "done", rows: 3000 });
      expect(report.chunks).toBeGreaterThanOrEqual(Math.ceil(3000 / 128));
      await waitFor("all rows", () => state.rows.size === 3000 && state.markers.some((m) => m.kind === "end"));
      expect(new Set(seen).size).toBe(seen.length);
      const row = state.rows.get("5/k1")!;
      expect(row).toEqual({ a: 5, b: "k1", v: 42 });
    } finally {
      await state.close();
    }
  }, 150_000);

  it("snapshot_cancel stops it after the chunk in progress, with a cancelled marker", async () => {
    const state = await applyStream(broker.url, "snap_big", (o) => String(o.id));
    try {
      const id = (await rpc.call("snapshot", [stringArg("snap_big")])).return_value as number;
      await waitFor("a few chunks", () => state.rows.size >= 500);
      const cancel = await rpc.call("snapshot_cancel", [intArg(id)]);
      expect(cancel.return_value).toBe(true);
      const report = await waitForEnd(id);
      expect(report.status).toBe("cancelled");
      await waitFor("cancelled marker", () => state.markers.some((m) => m.kind === "cancelled"));
      expect(state.markers.map((m) => m.kind)).toEqual(["start", "cancelled"]);
      expect(state.rows.size).toBeLessThan(50_000);
      const again = await rpc.call("snapshot_cancel", [intArg(id)]);
      expect(again.error).toMatch(/is cancelled, not running/);
    } finally {
      await state.close();
    }
  }, 150_000);
});

describe("restarts", () => {
  it("a tera-cdc killed mid-snapshot resumes from the last completed chunk", async () => {
    await pgServer.query(`CREATE TABLE snap_resume (id int PRIMARY KEY, val text);
      INSERT INTO snap_resume SELECT g, md5(g::text) FROM generate_series(1, 30000) g;`);
    // Small chunks: overlapped chunks read 30,000 rows in well under a second at 500 a chunk, before the kill.
    const chunk = 50;
    const args = ["--tables", "snap_resume", "--slot", "resume_slot", "--publication", "resume_pub", "--module-name", "resume", "--snapshot-chunk-size", String(chunk), "--rpc"];
    const first = await startCdc({ databaseUrl: pgServer.url, mqttUrl: broker.url, args });
    await first.waitForLog(/listening for RPC requests/);
    const caller = await rpcClient(broker.url, "module/resume/rpc");
    const state = await applyStream(broker.url, "snap_resume", (o) => String(o.id));
    let second: CdcProcess | null = null;
    try {
      const id = (await caller.call("snapshot", [stringArg("snap_resume")])).return_value as number;
      const atKill = await waitFor("5 completed chunks", async () => {
        const row = (await pgServer.query("SELECT chunks, last_key FROM tera_cdc.snapshots WHERE id = $1", [id])).rows[0];
        return row.chunks >= 5 ? row : undefined;
      }, 60_000, 20);
      await first.kill();
      const recorded = (await pgServer.query("SELECT chunks, last_key, status FROM tera_cdc.snapshots WHERE id = $1", [id])).rows[0];
      expect(recorded.status).toBe("running");
      expect(recorded.chunks).toBeGreaterThanOrEqual(atKill.chunks);
      second = await startCdc({ databaseUrl: pgServer.url, mqttUrl: broker.url, args });
      const resumed = await second.waitForLog(/resuming snapshot after the last completed chunk/);
      expect(resumed).toBeTruthy();
      const report = await waitFor("the resumed snapshot to end", async () => {
        const row = (await pgServer.query("SELECT status, rows::int, chunks FROM tera_cdc.snapshots WHERE id = $1", [id])).rows[0];
        return row.status === "done" ? row : undefined;
      }, 120_000, 200);
      expect(report.rows).toBe(30_000);
      await waitFor("all rows at the consumer", () => state.rows.size === 30_000 && state.markers.some((m) => m.kind === "end"), 60_000);
      // Not started over: at most the chunks in flight at the kill (two overlap) were sent twice.
      const sent = state.snapshotRows.get(String(id))!;
      expect(sent).toBeLessThanOrEqual(30_000 + 2 * chunk);
      expect(state.markers.filter((m) => m.kind === "start")).toHaveLength(1);
    } finally {
      await state.close();
      await caller.close();
      await second?.stop();
    }
  }, 240_000);

  it("--snapshot initial snapshots every published model once, when the slot is created", async () => {
    await pgServer.query(`CREATE TABLE snap_init (id_thing int PRIMARY KEY, name text);
      INSERT INTO snap_init SELECT g, 'n' || g FROM generate_series(1, 300) g;`);
    const state = await applyStream(broker.url, "thing", (o) => String(o.id_thing));
    const args = ["--tables", "snap_init", "--slot", "init_slot", "--publication", "init_pub", "--module-name", "init", "--snapshot", "initial", "--rpc"];
    const first = await startCdc({ databaseUrl: pgServer.url, mqttUrl: broker.url, args });
    try {
      await waitFor("the initial snapshot", () => state.rows.size === 300 && state.markers.some((m) => m.kind === "end"), 60_000);
      await first.stop();
      const second = await startCdc({ databaseUrl: pgServer.url, mqttUrl: broker.url, args });
      await second.waitForLog(/listening for RPC requests/);
      await new Promise((r) => setTimeout(r, 1500));
      await second.stop();
      expect(state.markers.filter((m) => m.kind === "start")).toHaveLength(1);
      const runs = (await pgServer.query("SELECT count(*)::int AS n FROM tera_cdc.snapshots WHERE slot = 'init_slot'")).rows[0].n;
      expect(runs).toBe(1);
    } finally {
      await state.close();
      if (first.child.exitCode === null) await first.stop();
    }
  }, 120_000);
});

