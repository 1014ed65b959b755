import { beforeAll, describe, expect, it } from "vitest";
import { startCdc } from "../harness/cdc.js";
import { startConsumer } from "../harness/consumer.js";
import { useClusterAndBroker } from "../harness/servers.js";

/**
 * Issue 4 item 8: rows with 10 MB text and bytea values and a row of a table with 1,600
 * columns (PostgreSQL's maximum) arrive intact: text equal, bytea as base64 of the same bytes,
 * every column with its value. With --max-message-bytes below the row's size, the same rows
 * follow the oversize rule: the event is published with its keys only, marked keys-only=true.
 */
const TEN_MB = 10 * 1024 * 1024;
const WIDE_COLUMNS = 1600;

describe("large rows", () => {
  const [pg, broker] = useClusterAndBroker();

  beforeAll(async () => {
    await pg.query("CREATE TABLE t_blobs (id_blob int PRIMARY KEY, blob_text text, blob_bytes bytea)");
    const columns = Array.from({ length: WIDE_COLUMNS - 1 }, (_, i) => `c${i + 1} int`).join(", ");
    await pg.query(`CREATE TABLE t_wides (id_wide int PRIMARY KEY, ${columns})`);
  });

  /** 10 MB of text and 10 MB of incompressible bytes (md5 chains), made by PostgreSQL. */
  async function insertBlob(id: number): Promise<{ text: string; bytes: Buffer }> {
    await pg.query(
      `INSERT INTO t_blobs
         SELECT $1, left(string_agg(md5(g::text || 't'), ''), ${TEN_MB}), decode(string_agg(md5(g::text || 'b'), ''), 'hex')
           FROM generate_series(1, ${TEN_MB / 16}) AS g`,
      [id],
    );
    const row = (await pg.query("SELECT blob_text, blob_bytes FROM t_blobs WHERE id_blob = $1", [id])).rows[0];
    return { text: row.blob_text as string, bytes: row.blob_bytes as Buffer };
  }

  async function insertWide(id: number): Promise<void> {
    const values = Array.from({ length: WIDE_COLUMNS - 1 }, (_, i) => String((i + 1) * 7 + id)).join(", ");
    await pg.query(`INSERT INTO t_wides VALUES (${id}, ${values})`);
  }

  it("publishes 10 MB text and bytea values and 1,600 columns intact", async () => {
    const consumer = await startConsumer(broker.url);
    const cdc = await startCdc({ databaseUrl: pg.url, mqttUrl: broker.url, args: ["--tables", "t_blobs,t_wides", "--slot", "large", "--publication", "large"] });
    try {
      const blob = await insertBlob(1);
      expect(blob.text.length).toBe(TEN_MB);
      expect(blob.bytes.length).toBe(TEN_MB);
      await insertWide(1);
      const [blobEvent, wideEvent] = await consumer.waitForCount(2, 120_000);
      expect(blobEvent!.properties["keys-only"]).toBeUndefined();
      expect(blobEvent!.object.id_blob).toBe(1);
      expect(blobEvent!.object.blob_text === blob.text).toBe(true);
      expect(Buffer.from(blobEvent!.object.blob_bytes as string, "base64").equals(blob.bytes)).toBe(true);
      expect(consumer.payloads[0]!.length).toBeGreaterThan(TEN_MB + (TEN_MB * 4) / 3);

      const wide = wideEvent!.object;
      expect(Object.keys(wide)).toHaveLength(WIDE_COLUMNS);
      expect(wide.id_wide).toBe(1);
      for (let i = 1; i < WIDE_COLUMNS; i++) expect(wide[`c${i}`]).toBe(i * 7 + 1);
      expect((await cdc.health()).status).toBe(200);
    } finally {
      expect(await cdc.stop()).toBe(0);
      await consumer.close();
    }
  }, 180_000);

  it("publishes rows larger than --max-message-bytes with their keys only, marked keys-only=true", async () => {
    await pg.query("ALTER TABLE t_blobs ADD COLUMN blob_uuid uuid DEFAULT gen_random_uuid()");
    const consumer = await startConsumer(broker.url);
    const cdc = await startCdc({
      databaseUrl: pg.url,
      mqttUrl: broker.url,
      args: ["--tables", "t_blobs,t_wides", "--slot", "oversize", "--publication", "oversize", "--max-message-bytes", "4096"],
    });
    try {
      await insertBlob(2);
      await insertWide(2);
      await pg.query("INSERT INTO t_blobs (id_blob, blob_text) VALUES (3, 'small')");
      const events = await consumer.waitForCount(3, 120_000);
      const uuid = (await pg.query("SELECT blob_uuid::text AS u FROM t_blobs WHERE id_blob = 2")).rows[0].u as string;
      // Keys only: the primary key and the delete keys (names ending _uuid), nothing else.
      expect(events[0]!.object).toEqual({ id_blob: 2, blob_uuid: uuid });
      expect(events[0]!.properties).toMatchObject({ "keys-only": "true", op: "create", reason: "oversize" });
      expect(events[1]!.object).toEqual({ id_wide: 2 });
      expect(events[1]!.properties).toMatchObject({ "keys-only": "true", op: "create" });
      // A row that fits is published whole, unmarked.
      expect(events[2]!.object).toMatchObject({ id_blob: 3, blob_text: "small" });
      expect(events[2]!.properties["keys-only"]).toBeUndefined();
      for (const payload of consumer.payloads) expect(payload.length).toBeLessThan(4096);
      const health = await cdc.health();
      expect(health.body.oversize).toBe(2);
      expect(cdc.logs()).toMatch(/keys only/);
    } finally {
      expect(await cdc.stop()).toBe(0);
      await consumer.close();
    }
  }, 180_000);
});
