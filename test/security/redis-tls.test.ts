import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startCdc } from "../harness/cdc.js";
import { type PostgresServer, startPostgres } from "../harness/postgres.js";
import { waitFor } from "../harness/ports.js";
import { type RedisServer, startRedis, startRedisSubscriber } from "../harness/redis.js";
import { makeTestCertificates, type TestCertificates } from "./certs.js";

/**
 * `run --redis-url rediss://... --redis-ca FILE` against a redis-server that speaks TLS only, its
 * certificate signed by a throwaway CA (openssl). The subscriber is node-redis configured here,
 * not through tera-cdc's code.
 */
let db: PostgresServer;
let redis: RedisServer;
let certs: TestCertificates;

beforeAll(async () => {
  certs = makeTestCertificates();
  [db, redis] = await Promise.all([startPostgres(), startRedis({ tls: { cert: certs.serverCert, key: certs.serverKey, ca: certs.caCert } })]);
  await db.query("CREATE TABLE tls_items (id int PRIMARY KEY, name text NOT NULL)");
}, 120_000);

afterAll(async () => {
  await Promise.all([db?.close(), redis?.close()]);
});

describe("run --redis-url rediss:// --redis-ca", () => {
  it("publishes over TLS to a Redis whose certificate the given CA signed", async () => {
    expect(redis.url).toMatch(/^rediss:/);
    const subscriber = await startRedisSubscriber(redis.url, undefined, { ca: certs.caCert });
    const cdc = await startCdc({ databaseUrl: db.url, redisUrl: redis.url, args: ["--redis-ca", certs.caCert, "--tables", "tls_items", "--slot", "tls_ok", "--publication", "tls_ok"] });
    try {
      await db.query("INSERT INTO tls_items SELECT i, 'n' || i FROM generate_series(1, 50) i");
      const events = await subscriber.waitForCount(50);
      expect(events.map((e) => e.object.id)).toEqual(Array.from({ length: 50 }, (_, i) => i + 1));
      expect(await cdc.stop()).toBe(0);
    } finally {
      if (cdc.child.exitCode === null) await cdc.kill();
      await subscriber.close();
    }
  });

  it("refuses a server its CA did not sign: the log names the certificate problem, nothing is confirmed, and a run with the right CA delivers it", async () => {
    const subscriber = await startRedisSubscriber(redis.url, undefined, { ca: certs.caCert });
    const wrong = await startCdc({ databaseUrl: db.url, redisUrl: redis.url, waitStreaming: false, args: ["--redis-ca", certs.otherCaCert, "--tables", "tls_items", "--slot", "tls_bad", "--publication", "tls_bad"] });
    try {
      await waitFor("a certificate error in the log", () => /certificate|self[- ]signed/i.test(wrong.logs()), 30_000, 100);
      await waitFor("the slot", async () => (await db.query("SELECT 1 FROM pg_replication_slots WHERE slot_name = 'tls_bad'")).rows.length === 1, 30_000, 100);
      await db.query("INSERT INTO tls_items VALUES (1000, 'withheld until trusted')");
      const written = ((await db.query("SELECT pg_current_wal_lsn()::text AS lsn")).rows[0] as { lsn: string }).lsn;
      await new Promise((resolve) => setTimeout(resolve, 2000));
      expect((await wrong.health()).status).toBe(503);
      const behind = await db.query("SELECT confirmed_flush_lsn IS NULL OR confirmed_flush_lsn < $1::pg_lsn AS behind FROM pg_replication_slots WHERE slot_name = 'tls_bad'", [written]);
      expect((behind.rows[0] as { behind: boolean }).behind).toBe(true);
      expect(subscriber.events.filter((e) => e.object.id === 1000)).toEqual([]);
    } finally {
      await wrong.kill();
    }
    const right = await startCdc({ databaseUrl: db.url, redisUrl: redis.url, args: ["--redis-ca", certs.caCert, "--tables", "tls_items", "--slot", "tls_bad", "--publication", "tls_bad"] });
    try {
      await waitFor("the withheld row", () => subscriber.events.some((e) => e.object.id === 1000), 30_000, 50);
      expect(await right.stop()).toBe(0);
    } finally {
      if (right.child.exitCode === null) await right.kill();
      await subscriber.close();
    }
  });
});
