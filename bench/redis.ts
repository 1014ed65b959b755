/**
 * The Redis sink's section of `npm run bench` (`--only redis`): tera-cdc `run --redis-url`
 * publishing one bulk transaction one event per PUBLISH (OpenTera's way), side by side with a bare
 * node-redis client PUBLISHing as many payloads of the same size with the same window, both
 * counted by the same PSUBSCRIBE subscriber.
 */
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { createClient } from "redis";
import type { CdcProcess } from "../test/harness/cdc.js";
import { waitFor } from "../test/harness/ports.js";
import { exited, spawnTracked } from "../test/harness/processes.js";
import { startRedis } from "../test/harness/redis.js";

const BARE_REDIS_PUBLISHER = join(import.meta.dirname, "bare-redis-publisher.mjs");
const CHANNEL_PREFIX = "module.TeraServer.DatabaseModule.events.";
const now = () => performance.timeOrigin + performance.now();

/** What the section needs from the benchmark around it. */
export interface RedisBenchContext {
  readonly rows: number;
  readonly reps: number;
  readonly inFlight: number;
  sql(text: string): Promise<unknown>;
  /** `tera-cdc run --redis-url` streaming `table` on slot (and publication) `name`. */
  startTeraCdc(name: string, table: string, redisUrl: string): Promise<CdcProcess>;
  stopTeraCdc(cdc: CdcProcess, slot: string): Promise<void>;
  add(id: string, label: string, unit: string, group: "tera-cdc" | "raw", value: number): void;
}

/** Counts PUBLISHed messages on a pattern, noting when the last one arrived. */
async function countingSubscriber(url: string, pattern: string) {
  const client = createClient({ url });
  const state = { messages: 0, bytes: 0, lastAt: 0 };
  await client.connect();
  await client.pSubscribe(
    pattern,
    (payload: Buffer) => {
      state.messages++;
      state.bytes += payload.length;
      state.lastAt = now();
    },
    true,
  );
  return {
    state,
    reset: () => Object.assign(state, { messages: 0, bytes: 0, lastAt: 0 }),
    waitFor: (count: number) => waitFor(`${count} messages on Redis (have ${state.messages})`, () => state.messages >= count, 300_000, 20),
    close: () => client.destroy(),
  };
}

export async function benchRedis(ctx: RedisBenchContext): Promise<void> {
  const redis = await startRedis();
  try {
    await ctx.sql("CREATE TABLE bench_redis (id_redis bigint PRIMARY KEY, v int NOT NULL, note text NOT NULL, at timestamptz NOT NULL DEFAULT now())");
    const subscriber = await countingSubscriber(redis.url, `${CHANNEL_PREFIX}*`);
    const cdc = await ctx.startTeraCdc("cdc_redis", "bench_redis", redis.url);
    let nextId = 1;
    let payloadBytes = 0;
    try {
      for (let rep = 0; rep < ctx.reps; rep++) {
        subscriber.reset();
        const from = nextId;
        nextId += ctx.rows;
        await ctx.sql(`INSERT INTO bench_redis (id_redis, v, note) SELECT g, g % 1000, 'bulk row ' || g FROM generate_series(${from}, ${nextId - 1}) g`);
        const committedAt = now();
        await subscriber.waitFor(ctx.rows);
        ctx.add("cdc-redis-single", "tera-cdc --redis-url bulk 1 tx, 1 event/PUBLISH", "changes/s", "tera-cdc", ctx.rows / ((subscriber.state.lastAt - committedAt) / 1000));
        payloadBytes = Math.round(subscriber.state.bytes / subscriber.state.messages);
      }
    } finally {
      await ctx.stopTeraCdc(cdc, "cdc_redis");
    }
    for (let rep = 0; rep < ctx.reps; rep++) {
      subscriber.reset();
      const child = spawnTracked(process.execPath, [BARE_REDIS_PUBLISHER, JSON.stringify({ url: redis.url, channel: `${CHANNEL_PREFIX}bare`, count: ctx.rows, payloadBytes, inFlight: ctx.inFlight })], {
        stdio: ["ignore", "pipe", "pipe"],
      });
      let stdout = "";
      let stderr = "";
      child.stdout?.on("data", (d: Buffer) => (stdout += d.toString()));
      child.stderr?.on("data", (d: Buffer) => (stderr += d.toString()));
      await subscriber.waitFor(ctx.rows);
      const code = await exited(child, 60_000);
      if (code !== 0) throw new Error(`bare Redis publisher exited with ${code}: ${stderr.slice(-1000)}`);
      const { firstPublishAt } = JSON.parse(stdout) as { firstPublishAt: number };
      ctx.add("bare-redis", `bare node-redis PUBLISH, ${payloadBytes} B payloads`, "msg/s", "raw", ctx.rows / ((subscriber.state.lastAt - firstPublishAt) / 1000));
    }
    subscriber.close();
  } finally {
    await redis.close();
  }
}
