import { randomBytes } from "node:crypto";
import { createServer, type Socket, connect as tcpConnect } from "node:net";
import { afterAll, describe, expect, it } from "vitest";
import { type Change, changeKey, changes, subscribe } from "../../src/client/index.js";
import { type CdcProcess, startCdc } from "../harness/cdc.js";
import { startConsumer } from "../harness/consumer.js";
import { waitFor } from "../harness/ports.js";
import { useClusterAndBroker } from "../harness/servers.js";

const [db, broker] = useClusterAndBroker();
const running: CdcProcess[] = [];

afterAll(async () => {
  for (const cdc of running) cdc.child.kill("SIGKILL");
});

/** A table whose OpenTera model is `model` (t_<model>s, primary key id_<model>) streamed by its own tera-cdc. */
async function streamedTable(model: string, extraArgs: string[] = []): Promise<{ table: string; args: string[]; cdc: CdcProcess }> {
  const table = `t_${model}s`;
  await db.query(`CREATE TABLE ${table} (id_${model} bigint PRIMARY KEY, name text)`);
  const args = ["--tables", table, "--slot", `${model}_slot`, "--publication", `${model}_pub`, ...extraArgs];
  const cdc = await startCdc({ databaseUrl: db.url, mqttUrl: broker.url, args });
  running.push(cdc);
  return { table, args, cdc };
}

/** A TCP relay to the broker whose connections the test can cut, as a network failure would. */
async function startRelay(port: number): Promise<{ url: string; cut(): void; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const server = createServer((inbound) => {
    const outbound = tcpConnect(port, "127.0.0.1");
    for (const [a, b] of [[inbound, outbound], [outbound, inbound]] as const) {
      sockets.add(a);
      a.pipe(b);
      a.on("error", () => b.destroy());
      a.on("close", () => {
        sockets.delete(a);
        b.destroy();
      });
    }
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address() as { port: number };
  return {
    url: `mqtt://127.0.0.1:${address.port}`,
    cut: () => {
      for (const socket of sockets) socket.destroy();
    },
    close: () => new Promise<void>((resolve) => {
      for (const socket of sockets) socket.destroy();
      server.close(() => resolve());
    }),
  };
}

const ids = (seen: Change[], model: string) => seen.map((c) => Number(c.object[`id_${model}`]));

describe("subscribe", () => {
  it("hands each change to the handler once although tera-cdc replays its unconfirmed tail after a SIGKILL", async () => {
    const model = "dedupe_item";
    const { table, args, cdc } = await streamedTable(model);
    const raw = await startConsumer(broker.url, `module/TeraServer/DatabaseModule/events/${model}`);
    const seen: Change[] = [];
    const subscription = await subscribe({ mqttUrl: broker.url, models: [model] }, (change) => {
      seen.push(change);
    });
    try {
      // One 20,000-row transaction: confirmed only once all of it is delivered, so a kill in the middle replays it.
      await db.query(`INSERT INTO ${table} SELECT g, 'row ' || g FROM generate_series(1, 20000) g`);
      await waitFor("the stream to be under way", () => raw.events.length >= 300 || undefined, 60_000, 5);
      await cdc.kill();
      const atKill = raw.events.length;
      expect(atKill).toBeLessThan(20_000);
      running.push(await startCdc({ databaseUrl: db.url, mqttUrl: broker.url, args }));

      await waitFor("all 20,000 changes", () => seen.length >= 20_000 || undefined, 120_000, 100);
      await waitFor("the replayed events on the wire", () => raw.events.length >= 20_000 + atKill || undefined, 60_000, 100);
      await new Promise((r) => setTimeout(r, 500));

      expect(seen).toHaveLength(20_000);
      expect(new Set(seen.map(changeKey)).size).toBe(20_000);
      expect(new Set(ids(seen, model)).size).toBe(20_000);
      expect(seen.every((c) => c.op === "create" && c.model === model && c.table === `public.${table}`)).toBe(true);
      // In commit order: one transaction, seq 0..19,999 in turn.
      expect(seen.map((c) => c.seq)).toEqual(Array.from({ length: 20_000 }, (_, i) => i));
      expect(subscription.stats.duplicates).toBe(raw.events.length - 20_000);
      console.log(`client dedupe: SIGKILL after ${atKill} events on the wire, ${raw.events.length - 20_000} repeats dropped`);
    } finally {
      await subscription.close();
      await raw.close();
    }
  }, 240_000);

  it("splits the stream between two members of a shared subscription group: each change goes to exactly one", async () => {
    const model = "shared_item";
    const { table } = await streamedTable(model);
    const first: Change[] = [];
    const second: Change[] = [];
    const a = await subscribe({ mqttUrl: broker.url, models: [model], group: "workers" }, (c) => void first.push(c));
    const b = await subscribe({ mqttUrl: broker.url, models: [model], group: "workers" }, (c) => void second.push(c));
    try {
      expect(a.topics).toEqual([`$share/workers/module/TeraServer/DatabaseModule/events/${model}`]);
      for (let i = 1; i <= 200; i += 20) {
        await db.query(`INSERT INTO ${table} SELECT g, 'x' FROM generate_series(${i}, ${i + 19}) g`);
      }
      await waitFor("200 changes between the two", () => first.length + second.length >= 200 || undefined, 60_000);
      await new Promise((r) => setTimeout(r, 500));
      expect(first.length).toBeGreaterThan(0);
      expect(second.length).toBeGreaterThan(0);
      const all = [...ids(first, model), ...ids(second, model)].sort((x, y) => x - y);
      expect(all).toEqual(Array.from({ length: 200 }, (_, i) => i + 1));
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  });

  it("keeps going after the handler throws, reporting each error with its change", async () => {
    const model = "fragile_item";
    const { table } = await streamedTable(model);
    const handled: number[] = [];
    const errors: { message: string; id: number | undefined }[] = [];
    const subscription = await subscribe(
      {
        mqttUrl: broker.url,
        models: [model],
        onError: (error, change) => errors.push({ message: error.message, id: change ? Number(change.object.id_fragile_item) : undefined }),
      },
      async (change) => {
        const id = Number(change.object.id_fragile_item);
        await new Promise((r) => setTimeout(r, 1));
        if (id % 5 === 0) throw new Error(`cannot handle ${id}`);
        handled.push(id);
      },
    );
    try {
      await db.query(`INSERT INTO ${table} SELECT g, 'x' FROM generate_series(1, 50) g`);
      await waitFor("40 handled", () => handled.length >= 40 || undefined, 60_000);
      await db.query(`INSERT INTO ${table} VALUES (51, 'after the errors')`);
      await waitFor("the change after the errors", () => handled.includes(51) || undefined, 60_000);
      expect(errors.map((e) => e.id)).toEqual([5, 10, 15, 20, 25, 30, 35, 40, 45, 50]);
      expect(errors[0]!.message).toBe("cannot handle 5");
      expect(handled).toHaveLength(41);
      expect(subscription.stats.failed).toBe(10);
    } finally {
      await subscription.close();
    }
  });

  it("with a persistent session, gets the changes published while it was disconnected, and only those", async () => {
    const model = "offline_item";
    const { table } = await streamedTable(model);
    const clientId = `offline-consumer-${randomBytes(3).toString("hex")}`;
    const raw = await startConsumer(broker.url, `module/TeraServer/DatabaseModule/events/${model}`);
    const before: Change[] = [];
    const after: Change[] = [];
    const firstSession = await subscribe({ mqttUrl: broker.url, models: [model], clientId }, (c) => void before.push(c));
    try {
      await db.query(`INSERT INTO ${table} SELECT g, 'x' FROM generate_series(1, 20) g`);
      await waitFor("the first 20", () => before.length >= 20 || undefined, 60_000);
    } finally {
      await firstSession.close();
    }
    // Published while the consumer is away: 300 inserts, 100 updates, 50 deletes, a truncate.
    await db.query(`INSERT INTO ${table} SELECT g, 'x' FROM generate_series(21, 320) g`);
    await db.query(`UPDATE ${table} SET name = 'y' WHERE id_${model} <= 100`);
    await db.query(`DELETE FROM ${table} WHERE id_${model} > 270`);
    await db.query(`TRUNCATE ${table}`);
    await raw.waitForCount(20 + 300 + 100 + 50 + 1, 60_000);
    const secondSession = await subscribe({ mqttUrl: broker.url, models: [model], clientId }, (c) => void after.push(c));
    try {
      await waitFor("the 451 missed changes", () => after.length >= 451 || undefined, 60_000);
      await new Promise((r) => setTimeout(r, 300));
      expect(after).toHaveLength(451);
      const counts = after.reduce<Record<string, number>>((acc, c) => ({ ...acc, [c.op]: (acc[c.op] ?? 0) + 1 }), {});
      expect(counts).toEqual({ create: 300, update: 100, delete: 50, truncate: 1 });
      expect(Math.min(...ids(after.filter((c) => c.op === "create"), model))).toBe(21);
      expect(after.at(-1)).toMatchObject({ op: "truncate", object: {} });
    } finally {
      await secondSession.close();
      await raw.close();
    }
  });

  it("loses nothing and repeats nothing when its connection breaks with messages handled but not yet acknowledged", async () => {
    const model = "dropped_item";
    const { table } = await streamedTable(model);
    const relay = await startRelay(broker.port);
    const seen: Change[] = [];
    const errors: string[] = [];
    const subscription = await subscribe(
      { mqttUrl: relay.url, models: [model], clientId: `dropped-consumer-${randomBytes(3).toString("hex")}`, mqtt: { reconnectPeriod: 200 }, onError: (e) => errors.push(e.message) },
      async (change) => {
        // A slow handler: hundreds of messages wait unacknowledged when the connection breaks.
        await new Promise((r) => setTimeout(r, 1));
        seen.push(change);
      },
    );
    try {
      await db.query(`INSERT INTO ${table} SELECT g, 'x' FROM generate_series(1, 2000) g`);
      await waitFor("some handled", () => seen.length >= 300 || undefined, 60_000, 5);
      relay.cut();
      const atCut = seen.length;
      expect(atCut).toBeLessThan(2000);
      await waitFor("all 2,000 after the reconnect", () => seen.length >= 2000 || undefined, 120_000);
      await new Promise((r) => setTimeout(r, 500));
      expect(seen).toHaveLength(2000);
      expect(ids(seen, model)).toEqual(Array.from({ length: 2000 }, (_, i) => i + 1));
      // The broker re-sent what had not been acknowledged; the ones already handled were dropped as repeats.
      expect(subscription.stats.duplicates).toBeGreaterThan(0);
      console.log(`client reconnect: cut after ${atCut} handled, ${subscription.stats.duplicates} re-sent repeats dropped`);
    } finally {
      await subscription.close();
      await relay.close();
    }
  });

  it("as an async iterator, filtered by op and decoding batched TeraEvents; leaving the loop leaves the rest for the next session", async () => {
    const model = "iterated_item";
    const { table } = await streamedTable(model, ["--batch-events", "25"]);
    const clientId = `iterating-consumer-${randomBytes(3).toString("hex")}`;
    const options = { mqttUrl: broker.url, models: [model], ops: ["update" as const], clientId };
    // First session: subscribe (so the broker keeps the session), read 10 updates, leave the loop.
    const taken: Change[] = [];
    const stream = changes(options);
    const reading = (async () => {
      for await (const change of stream) {
        taken.push(change);
        if (taken.length === 10) break;
      }
    })();
    await stream.subscription;
    await db.query(`INSERT INTO ${table} SELECT g, 'x' FROM generate_series(1, 100) g`);
    await db.query(`UPDATE ${table} SET name = 'y'`);
    await reading;
    expect(taken.map((c) => c.op)).toEqual(Array(10).fill("update"));
    expect(taken.map((c) => c.seq)).toEqual(Array.from({ length: 10 }, (_, i) => i));
    // Batched: 25 changes share one TeraEvent and its lsn.
    expect(taken[0]!.teraEvent.events).toHaveLength(25);

    const rest: Change[] = [];
    for await (const change of changes(options)) {
      rest.push(change);
      if (change.seq === 99) break;
    }
    // The first message (25 updates) was not acknowledged, since the loop left it half read: the next
    // session gets all of it again, then the other 75.
    expect(rest.map((c) => c.seq)).toEqual(Array.from({ length: 100 }, (_, i) => i));
    expect(rest.every((c) => c.op === "update")).toBe(true);
  });
});
