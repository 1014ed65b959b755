import { afterAll, beforeAll, describe, expect, it, onTestFinished } from "vitest";
import { startCdc } from "../harness/cdc.js";
import { freePort, waitFor } from "../harness/ports.js";
import { type PostgresServer, startPostgres } from "../harness/postgres.js";
import { type RedisEvent, type RedisGate, type RedisServer, type RedisSubscriber, startGate, startRedis, startRedisSubscriber } from "../harness/redis.js";
import { committedIds, confirmedPosition, createOpenTeraWorkload, type OpenTeraWorkload, sleep, startWriter, writeBacklog } from "./support.js";

/**
 * `run --preset opentera --redis-url` (an OpenTera server's drop-in) against a real redis-server,
 * each test on a database of its own with OpenTera's schema, writing sites and user groups.
 * tera-cdc reaches Redis through a gate (a TCP relay the test can shut); the subscriber, an
 * OpenTera-style PSUBSCRIBE client, talks to Redis directly. Redis pub/sub reaches only connected
 * subscribers, so where Redis itself restarts the subscriber is let back in before tera-cdc: what
 * is checked is that tera-cdc publishes every committed change again once Redis answers, in commit
 * order, as OpenTera would write it (model, channel, keys).
 */
let db: PostgresServer;
let redis: RedisServer;
let gate: RedisGate;

beforeAll(async () => {
  [db, redis] = await Promise.all([startPostgres(), startRedis()]);
  gate = await startGate(redis.port);
}, 120_000);

afterAll(async () => {
  await gate?.shutdown();
  await Promise.all([db?.close(), redis?.close()]);
});

/**
 * Every committed row arrived (at least once), nothing else did, and per table the first arrival
 * of each id comes in commit (= id) order. Returns how many arrivals were replays.
 */
function checkRedisDelivery(events: readonly RedisEvent[], expected: Map<string, number[]>, workload: OpenTeraWorkload): number {
  const seen = new Map<string, Set<number>>();
  const last = new Map<string, number>();
  let replays = 0;
  for (const event of events) {
    const table = workload.tableOfModel[event.model];
    if (table === undefined) throw new Error(`an event of model ${event.model}, which the workload does not write`);
    const id = Number(event.object[workload.idColumn[table.slice("public.".length)]!]);
    const ids = seen.get(table) ?? new Set<number>();
    seen.set(table, ids);
    if (ids.has(id)) {
      replays++;
      continue;
    }
    ids.add(id);
    const previous = last.get(table) ?? -1;
    if (id < previous) throw new Error(`${table}: id ${id} first arrived after ${previous} (out of commit order)`);
    last.set(table, id);
    expect(event.channel).toBe(`module.TeraServer.DatabaseModule.events.${event.model}`);
    expect(event.headerTopic).toBe(event.channel);
    // OpenTera leaves deleted_at out while it is NULL (its services test the key's presence).
    expect(Object.keys(event.object)).not.toContain("deleted_at");
  }
  for (const [table, ids] of expected) {
    const got = seen.get(table) ?? new Set<number>();
    const missing = ids.filter((id) => !got.has(id));
    if (missing.length > 0) throw new Error(`${table}: ${missing.length} of ${ids.length} committed rows never arrived (first ${missing.slice(0, 5).join(", ")})`);
    if (got.size !== ids.length) throw new Error(`${table}: ${got.size} distinct ids for ${ids.length} committed rows`);
  }
  return replays;
}

async function waitForAllOnRedis(subscriber: RedisSubscriber, workload: OpenTeraWorkload, timeoutMs = 120_000): Promise<Map<string, number[]>> {
  const expected = await committedIds(workload.db, workload);
  let total = 0;
  for (const ids of expected.values()) total += ids.length;
  const rowOf = (e: RedisEvent) => `${e.model}/${String(e.object[workload.idColumn[workload.tableOfModel[e.model]?.slice("public.".length) ?? ""] ?? ""])}`;
  await waitFor(`${total} distinct events on Redis`, () => new Set(subscriber.events.map(rowOf)).size >= total, timeoutMs, 100);
  return expected;
}

/**
 * `run --preset opentera --redis-url` on the workload's database: the preset's tables, OpenTera's
 * models. Killed after the test unless it exited (each helper below cleans up after its test, in
 * reverse order of start, whatever the test's outcome).
 */
async function cdcOn(workload: OpenTeraWorkload, slot: string, redisUrl = gate.url, options: { waitStreaming?: boolean } = {}) {
  const cdc = await startCdc({ databaseUrl: workload.db.url, redisUrl, args: ["--preset", "opentera", "--slot", slot, "--publication", `${slot}_pub`], ...options });
  onTestFinished(async () => {
    if (cdc.child.exitCode === null) await cdc.kill();
  });
  return cdc;
}

/** An OpenTera-style PSUBSCRIBE client on Redis itself (not through the gate), closed after the test. */
async function subscriberOn(): Promise<RedisSubscriber> {
  const subscriber = await startRedisSubscriber(redis.url);
  onTestFinished(() => subscriber.close());
  return subscriber;
}

/** Transactions of 20 rows every 10 ms until stopped (at the latest after the test). */
function writerOn(workload: OpenTeraWorkload) {
  const writer = startWriter(workload.db, workload, { rowsPerTransaction: 20, pauseMs: 10 });
  onTestFinished(() => writer.stop());
  return writer;
}

/** A client of Redis itself for CLIENT PAUSE, closed after the test. */
async function redisAdmin() {
  const { createClient } = await import("redis");
  const admin = createClient({ url: redis.url });
  admin.on("error", () => {});
  await admin.connect();
  onTestFinished(() => {
    if (admin.isOpen) admin.destroy();
  });
  return admin;
}

describe("run --redis-url: faults", () => {
  it("Redis down for 10 s and back, PUBLISHes in flight at the cut: stops reading, reconnects, sends again what was unanswered, loses nothing", async () => {
    const workload = await createOpenTeraWorkload(db, "rdown");
    const subscriber = await subscriberOn();
    const cdc = await cdcOn(workload, "rdown");
    const writer = writerOn(workload);
    const admin = await redisAdmin();
    await waitFor("the stream to be under way", () => subscriber.events.length >= 1000, 60_000, 20);
    // Redis holds every write command (PUBLISH included) unanswered while paused: what tera-cdc
    // sends from here is in flight, sent and unanswered, when the connection is cut.
    await admin.sendCommand(["CLIENT", "PAUSE", "60000", "WRITE"]);
    const sentBefore = gate.bytesToRedis();
    await waitFor("PUBLISHes sent while Redis holds their answers", () => gate.bytesToRedis() > sentBefore + 4096, 30_000, 20);
    admin.destroy();
    await gate.close();
    await redis.stop();
    const downAt = Date.now();
    await writer.stop();
    await writeBacklog(workload.db, workload, 100, 50, 20_000_000);
    await waitFor("health to report the lost connection", async () => (await cdc.health()).status === 503, 30_000, 100);
    const metrics = await (await fetch(`http://127.0.0.1:${cdc.healthPort}/metrics`)).text();
    expect(metrics).toMatch(/tera_cdc_/);
    await sleep(Math.max(0, 10_000 - (Date.now() - downAt)));
    await redis.start();
    // A subscriber must be connected to receive anything: it goes first, then tera-cdc.
    await subscriber.subscribed();
    await gate.open();
    const expected = await waitForAllOnRedis(subscriber, workload);
    checkRedisDelivery(subscriber.events, expected, workload);
    await cdc.waitForStreaming(60_000);
    expect(cdc.logs()).toMatch(/redis connection restored/);
    expect(await cdc.stop()).toBe(0);
  }, 300_000);

  it("Redis restarted mid-stream: nothing lost, commit order kept", async () => {
    const workload = await createOpenTeraWorkload(db, "rrestart");
    const subscriber = await subscriberOn();
    const cdc = await cdcOn(workload, "rrestart");
    const writer = writerOn(workload);
    await waitFor("the stream to be under way", () => subscriber.events.length >= 1000, 60_000, 20);
    await gate.close();
    await redis.stop();
    await redis.start();
    await subscriber.subscribed();
    await gate.open();
    await sleep(2000);
    await writer.stop();
    const expected = await waitForAllOnRedis(subscriber, workload);
    checkRedisDelivery(subscriber.events, expected, workload);
    expect(await cdc.stop()).toBe(0);
  }, 300_000);

  it("a slow Redis (paused clients): publishing waits and catches up, nothing lost", async () => {
    const workload = await createOpenTeraWorkload(db, "rslow");
    const subscriber = await subscriberOn();
    const cdc = await cdcOn(workload, "rslow");
    const writer = writerOn(workload);
    const admin = await redisAdmin();
    await waitFor("the stream to be under way", () => subscriber.events.length >= 500, 60_000, 20);
    // Three pauses of 2 s: Redis answers no write command (PUBLISH included) meanwhile.
    for (let i = 0; i < 3; i++) {
      await admin.sendCommand(["CLIENT", "PAUSE", "2000", "WRITE"]);
      await sleep(2500);
    }
    await writer.stop();
    const expected = await waitForAllOnRedis(subscriber, workload);
    expect(checkRedisDelivery(subscriber.events, expected, workload)).toBe(0);
    expect(await cdc.stop()).toBe(0);
  }, 300_000);

  it("SIGKILL of tera-cdc: the next run publishes from the confirmed position, nothing lost", async () => {
    const workload = await createOpenTeraWorkload(db, "rkill");
    const subscriber = await subscriberOn();
    const first = await cdcOn(workload, "rkill");
    const writer = writerOn(workload);
    await waitFor("the stream to be under way", () => subscriber.events.length >= 1000, 60_000, 20);
    await first.kill();
    await writer.stop();
    await writeBacklog(workload.db, workload, 50, 20, 30_000_000);
    const second = await cdcOn(workload, "rkill");
    const expected = await waitForAllOnRedis(subscriber, workload);
    checkRedisDelivery(subscriber.events, expected, workload);
    expect(await second.stop()).toBe(0);
  }, 300_000);

  it("clean stop: everything answered is confirmed, the next run sends nothing twice", async () => {
    const workload = await createOpenTeraWorkload(db, "rstop");
    const subscriber = await subscriberOn();
    const first = await cdcOn(workload, "rstop");
    await writeBacklog(workload.db, workload, 100, 20, 1);
    const expected = await waitForAllOnRedis(subscriber, workload);
    expect(await first.stop()).toBe(0);
    const confirmed = await confirmedPosition(workload.db, "rstop");
    expect(confirmed).toBeGreaterThan(0n);
    const second = await cdcOn(workload, "rstop");
    await writeBacklog(workload.db, workload, 10, 20, 50_000);
    const all = await waitForAllOnRedis(subscriber, workload);
    expect(checkRedisDelivery(subscriber.events, all, workload)).toBe(0);
    expect(all.get("public.t_sites")!.length).toBeGreaterThan(expected.get("public.t_sites")!.length);
    expect(await second.stop()).toBe(0);
  }, 300_000);

  it("Redis unreachable at start: keeps trying, and SIGTERM meanwhile is a clean stop", async () => {
    const workload = await createOpenTeraWorkload(db, "rnever");
    const nothing = await freePort();
    const cdc = await cdcOn(workload, "rnever", `redis://127.0.0.1:${nothing}`, { waitStreaming: false });
    await cdc.waitForLog(/redis error: .*ECONNREFUSED|redis unreachable/, 60_000);
    expect((await cdc.health()).status).toBe(503);
    expect(await cdc.stop()).toBe(0);
  }, 120_000);
});
