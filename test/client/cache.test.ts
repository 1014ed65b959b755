import { randomBytes } from "node:crypto";
import { LRUCache } from "lru-cache";
import { createClient } from "redis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { invalidateCache, subscribe, type Subscription } from "../../src/client/index.js";
import { type CdcProcess, startCdc } from "../harness/cdc.js";
import { waitFor } from "../harness/ports.js";
import { useClusterAndBroker } from "../harness/servers.js";

// The Redis server this kind of machine runs; keys carry a prefix of this run's own.
const REDIS_URL = process.env.TERA_CDC_TEST_REDIS_URL ?? "redis://127.0.0.1:6379";

const [db, broker] = useClusterAndBroker();
let cdc: CdcProcess;

beforeAll(async () => {
  await db.query("CREATE TABLE t_devices (id_device bigint PRIMARY KEY, name text)");
  await db.query("CREATE TABLE t_users (id_user bigint PRIMARY KEY, name text)");
  await db.query("INSERT INTO t_devices SELECT g, 'd' || g FROM generate_series(1, 10) g");
  await db.query("INSERT INTO t_users SELECT g, 'u' || g FROM generate_series(1, 3) g");
  // --batch-events: the cache helper also sees changes that arrive several to a TeraEvent.
  cdc = await startCdc({ databaseUrl: db.url, mqttUrl: broker.url, args: ["--tables", "t_devices,t_users", "--batch-events", "10"] });
});

afterAll(async () => {
  cdc?.child.kill("SIGKILL");
});

describe("invalidateCache on the real stream", () => {
  it("keeps a Map, an lru-cache and Redis free of updated, deleted and truncated rows", async () => {
    const prefix = `tera-cdc-test-${randomBytes(4).toString("hex")}:`;
    const redis = createClient({ url: REDIS_URL });
    await redis.connect();
    const map = new Map<string, string>();
    const lru = new LRUCache<string, string>({ max: 1000 });
    const fill = async () => {
      for (let id = 1; id <= 10; id++) {
        map.set(`${prefix}device:${id}`, "cached");
        lru.set(`${prefix}device:${id}`, "cached");
        await redis.set(`${prefix}device:${id}`, "cached");
      }
      for (let id = 1; id <= 3; id++) {
        map.set(`${prefix}user:${id}`, "cached");
        lru.set(`${prefix}user:${id}`, "cached");
        await redis.set(`${prefix}user:${id}`, "cached");
      }
    };
    const keysOf = async () => ({
      map: [...map.keys()].map((k) => k.slice(prefix.length)).sort(),
      lru: [...lru.keys()].map((k) => k.slice(prefix.length)).sort(),
      redis: (await redis.keys(`${prefix}*`)).map((k) => k.slice(prefix.length)).sort(),
    });
    const options = { mqttUrl: broker.url, models: ["device", "user"] };
    const subscriptions: Subscription[] = [];
    try {
      // The three lines of the README, once per kind of cache (only device entries are managed here).
      subscriptions.push(await subscribe(options, invalidateCache(map, { models: ["device"], prefix })));
      subscriptions.push(await subscribe(options, invalidateCache(lru, { models: ["device"], prefix })));
      subscriptions.push(await subscribe(options, invalidateCache(redis, { models: ["device"], prefix })));
      await fill();

      await db.query("UPDATE t_devices SET name = 'renamed' WHERE id_device IN (2, 3)");
      await db.query("DELETE FROM t_devices WHERE id_device = 7");
      await db.query("INSERT INTO t_devices VALUES (11, 'new')");
      await db.query("UPDATE t_users SET name = 'renamed'");
      const expected = ["device:1", "device:10", "device:4", "device:5", "device:6", "device:8", "device:9", "user:1", "user:2", "user:3"];
      const settled = await waitFor(
        "the caches to drop devices 2, 3 and 7",
        async () => {
          const keys = await keysOf();
          return keys.map.length === 10 && keys.lru.length === 10 && keys.redis.length === 10 ? keys : undefined;
        },
        60_000,
      );
      expect(settled).toEqual({ map: expected, lru: expected, redis: expected });

      await db.query("TRUNCATE t_devices");
      const afterTruncate = await waitFor(
        "the caches to drop every device",
        async () => {
          const keys = await keysOf();
          return keys.map.length === 3 && keys.lru.length === 3 && keys.redis.length === 3 ? keys : undefined;
        },
        60_000,
      );
      const users = ["user:1", "user:2", "user:3"];
      expect(afterTruncate).toEqual({ map: users, lru: users, redis: users });
      expect(subscriptions.every((s) => s.stats.failed === 0)).toBe(true);
    } finally {
      await Promise.all(subscriptions.map((s) => s.close()));
      const left = await redis.keys(`${prefix}*`);
      if (left.length > 0) await redis.del(left);
      await redis.quit();
    }
  });
});
