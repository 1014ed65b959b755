import { randomBytes } from "node:crypto";
import mqtt, { type MqttClient } from "mqtt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { encodeMessage, type Value } from "../../src/messages/index.js";
import { type CdcProcess, startCdc } from "../harness/cdc.js";
import { waitFor } from "../harness/ports.js";
import { useClusterAndBroker } from "../harness/servers.js";

/**
 * Issue 14, "Critical: the snapshot `where` filter runs the caller's SQL as tera-cdc's role".
 * Each test is one reproduction of the issue, run against a real tera-cdc, PostgreSQL and
 * Mosquitto. Every one of them failed on main before the structured filter (checked by running
 * this file against 8f9bc9b): the SQL ran, the secret came back, the slot was dropped, ...
 * The filters are sent exactly as an attacker would: a string_value in the RPC's `where` place.
 */

const PASSWORD_HASH = "$2b$12$SECRETHASHxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx";
const DEVICE_TOKEN = "device-token-SECRET-42";

const [pgServer, broker] = useClusterAndBroker();
let cdc: CdcProcess;
let spy: { messages: { topic: string; payload: string }[]; client: MqttClient };
const CDC_ARGS = ["--tables", "t_devices,t_users", "--slot", "sec_slot", "--publication", "sec_pub", "--snapshot-chunk-size", "64", "--rpc"];

function str(text: string): Value {
  return { $type: "opentera.protobuf.Value", argValue: { $case: "stringValue", stringValue: text } };
}
function int(n: number): Value {
  return { $type: "opentera.protobuf.Value", argValue: { $case: "intValue", intValue: BigInt(n) } };
}

type Reply = { id: number; return_value?: any; error?: string };

/** One RPC caller with its own reply topic under tera-cdc's CLI prefix (the default allowed one). */
async function caller(name: string): Promise<{ call(method: string, args?: Value[], replyTo?: string, timeoutMs?: number): Promise<Reply>; replyTopic: string; close(): Promise<void> }> {
  const client = await mqtt.connectAsync(broker.url, { protocolVersion: 5, clean: true });
  const replyTopic = `tera-cdc/cli/${name}-${randomBytes(4).toString("hex")}/reply`;
  const waiting = new Map<number, (reply: Reply) => void>();
  client.on("message", (_topic, payload) => {
    const reply = JSON.parse(payload.toString()) as Reply;
    waiting.get(reply.id)?.(reply);
  });
  await client.subscribeAsync(replyTopic, { qos: 1 });
  let nextId = 1;
  return {
    replyTopic,
    call(method, args = [], replyTo = replyTopic, timeoutMs = 30_000) {
      const id = nextId++;
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no reply to ${method} within ${timeoutMs} ms`)), timeoutMs);
        waiting.set(id, (reply) => {
          clearTimeout(timer);
          resolve(reply);
        });
        const bytes = encodeMessage({ $type: "opentera.protobuf.RPCMessage", method, replyTo, id: BigInt(id), timestamp: Date.now() / 1000, args });
        client.publish("module/tera-cdc/rpc", Buffer.from(bytes), { qos: 1 });
      });
    },
    close: () => client.endAsync(true),
  };
}

async function slotExists(name: string): Promise<boolean> {
  return (await pgServer.query("SELECT 1 FROM pg_replication_slots WHERE slot_name = $1", [name])).rowCount === 1;
}

/** A snapshot started by a hostile filter may run: wait until it is no longer running. */
async function settled(reply: Reply): Promise<void> {
  if (typeof reply.return_value !== "number") return;
  await waitFor("the snapshot to end", async () => {
    const row = (await pgServer.query("SELECT status FROM tera_cdc.snapshots WHERE id = $1", [reply.return_value])).rows[0];
    return row?.status !== "running";
  }, 60_000, 100);
}

beforeAll(async () => {
  await pgServer.query(`
    CREATE TABLE t_users (id_user serial PRIMARY KEY, user_username text NOT NULL, user_password text NOT NULL);
    INSERT INTO t_users (user_username, user_password) VALUES ('admin', '${PASSWORD_HASH}');
    CREATE TABLE t_devices (id_device int PRIMARY KEY, id_site int NOT NULL, device_name text, device_token text);
    INSERT INTO t_devices SELECT g, g % 5, 'dev' || g, '${DEVICE_TOKEN}' FROM generate_series(1, 500) g;`);
  const client = await mqtt.connectAsync(broker.url, { protocolVersion: 5, clean: true });
  spy = { messages: [], client };
  client.on("message", (topic, payload) => spy.messages.push({ topic, payload: payload.toString("latin1") }));
  await client.subscribeAsync("#", { qos: 1 });
  cdc = await startCdc({ databaseUrl: pgServer.url, mqttUrl: broker.url, args: CDC_ARGS });
  await cdc.waitForLog(/listening for RPC requests/);
}, 90_000);

afterAll(async () => {
  await spy?.client.endAsync(true);
  await cdc?.stop();
});

describe("issue 14: no SQL from the wire", () => {
  it("reproduction 1 and 2: a subquery in the filter does not bring back the password hash, a withheld column or a file", async () => {
    const rpc = await caller("thief");
    try {
      const filters = [
        "id_device = 1 AND CAST((SELECT user_password FROM t_users WHERE id_user = 1) AS int) = 1",
        "id_device = 1 AND CAST((SELECT device_token FROM t_devices WHERE id_device = 1) AS int) = 1",
        "id_device = 1 AND CAST(pg_read_file('/etc/passwd') AS int) = 1",
      ];
      for (const filter of filters) {
        const reply = await rpc.call("snapshot", [str("device"), str(filter)]);
        await settled(reply);
        const status = typeof reply.return_value === "number" ? await rpc.call("snapshot_status", [int(reply.return_value)]) : reply;
        const seen = JSON.stringify(status) + spy.messages.map((m) => m.payload).join("\n");
        expect(seen).not.toContain("SECRETHASH");
        expect(seen).not.toContain(DEVICE_TOKEN);
        expect(seen).not.toContain("root:x:0:0");
        expect(reply.error, filter).toMatch(/filter/);
      }
      expect(cdc.logs()).not.toContain("SECRETHASH");
    } finally {
      await rpc.close();
    }
  }, 120_000);

  it("reproduction 3: a filter calling pg_drop_replication_slot does not drop a slot", async () => {
    await pgServer.query("SELECT pg_create_logical_replication_slot('victim', 'pgoutput')");
    const rpc = await caller("dropper");
    try {
      const reply = await rpc.call("snapshot", [str("device"), str("id_device = 1 AND (SELECT count(*) FROM pg_drop_replication_slot('victim')) = 1")]);
      await settled(reply);
      expect(await slotExists("victim")).toBe(true);
      expect(await slotExists("sec_slot")).toBe(true);
      expect(reply.error).toMatch(/filter/);
    } finally {
      await rpc.close();
    }
  }, 120_000);

  it("reproduction 4: four pg_sleep(25) filters neither hold connections nor stop status from being answered", async () => {
    const rpc = await caller("sleeper");
    try {
      const replies = await Promise.all([1, 2, 3, 4].map(() => rpc.call("snapshot", [str("device"), str("id_device > 0 AND pg_sleep(25) IS NOT NULL")])));
      // Before: the pool's four connections slept in the chunks and status waited behind them.
      const status = await rpc.call("status", [], undefined, 10_000);
      expect(status.return_value?.slot).toBe("sec_slot");
      const sleeping = await pgServer.query("SELECT count(*)::int AS n FROM pg_stat_activity WHERE query LIKE '%pg_sleep(25)%' AND pid <> pg_backend_pid()");
      expect(sleeping.rows[0].n).toBe(0);
      for (const reply of replies) expect(reply.error).toMatch(/filter/);
    } finally {
      await rpc.close();
    }
  }, 120_000);

  it("reproduction 5a: snapshot_status from another client does not show someone else's snapshot", async () => {
    const owner = await caller("owner");
    const other = await caller("other");
    try {
      const started = await owner.call("snapshot", [str("device")]);
      expect(typeof started.return_value).toBe("number");
      await settled(started);
      const mine = await owner.call("snapshot_status", [int(started.return_value)]);
      expect(mine.return_value).toMatchObject({ id: started.return_value, status: "done", rows: 500 });
      const theirs = await other.call("snapshot_status", [int(started.return_value)]);
      expect(theirs.return_value).toBeUndefined();
      expect(theirs.error).toMatch(/unknown snapshot id/);
      const cancel = await other.call("snapshot_cancel", [int(started.return_value)]);
      expect(cancel.return_value).toBeUndefined();
    } finally {
      await owner.close();
      await other.close();
    }
  }, 120_000);

  it("reproduction 5b: a 2 MB filter is refused, not logged, not stored", async () => {
    const rpc = await caller("big");
    try {
      const filler = "x".repeat(2 * 1024 * 1024);
      // Before: accepted, answered with an id, stored and repeated in every report. Now not read at all.
      const reply = await rpc.call("snapshot", [str("device"), str(`id_device > 0 AND '${filler}' <> ''`)], undefined, 5000).catch((error: Error) => error);
      if (!(reply instanceof Error)) await settled(reply);
      expect(reply).toBeInstanceOf(Error);
      await cdc.waitForLog(/RPC request not answered: request of \d+ bytes is over the limit of 16384/);
      expect(cdc.logs()).not.toContain("x".repeat(1000));
      const stored = await pgServer.query("SELECT count(*)::int AS n FROM tera_cdc.snapshots WHERE length(coalesce(where_sql, '')) > 100000");
      expect(stored.rows[0].n).toBe(0);
    } finally {
      await rpc.close();
    }
  }, 120_000);

  it("reproduction 6: reply_to on an event topic is refused: nothing is published there", async () => {
    const rpc = await caller("forger");
    try {
      const eventTopic = "module/TeraServer/DatabaseModule/events/project";
      const before = spy.messages.length;
      await expect(rpc.call("status", [], eventTopic, 3000)).rejects.toThrow(/no reply/);
      // A later request answered on the caller's own topic: everything before it has been handled.
      const ok = await rpc.call("status");
      expect(ok.return_value?.slot).toBe("sec_slot");
      await waitFor("the spy to see the good reply", () => spy.messages.slice(before).some((m) => m.topic === rpc.replyTopic), 10_000);
      expect(spy.messages.slice(before).filter((m) => m.topic === eventTopic)).toEqual([]);
      expect(spy.messages.slice(before).filter((m) => m.topic.startsWith("module/TeraServer/DatabaseModule/events/"))).toEqual([]);
    } finally {
      await rpc.close();
    }
  }, 60_000);

  it("reproduction 7: a running snapshot with a raw SQL filter, found at restart, is not run again", async () => {
    await pgServer.query("SELECT pg_create_logical_replication_slot('victim2', 'pgoutput')");
    await cdc.stop();
    // What a malicious request left behind in the state table before the upgrade.
    const row = await pgServer.query(
      `INSERT INTO tera_cdc.snapshots (slot, model, table_schema, table_name, where_sql, estimated_rows)
       VALUES ('sec_slot', 'device', 'public', 't_devices', $1, 500) RETURNING id::int AS id`,
      ["id_device = 1 AND (SELECT count(*) FROM pg_drop_replication_slot('victim2')) = 1"],
    );
    const id = row.rows[0].id as number;
    cdc = await startCdc({ databaseUrl: pgServer.url, mqttUrl: broker.url, args: CDC_ARGS });
    await cdc.waitForLog(/listening for RPC requests/);
    const final = await waitFor("the left-over snapshot to be settled", async () => {
      const r = (await pgServer.query("SELECT status, error FROM tera_cdc.snapshots WHERE id = $1", [id])).rows[0];
      return r.status !== "running" ? r : undefined;
    }, 60_000, 100);
    expect(await slotExists("victim2")).toBe(true);
    expect(final.status).toBe("failed");
  }, 120_000);
});
