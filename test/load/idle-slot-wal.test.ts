import { describe, expect, it } from "vitest";
import { startCdc } from "../harness/cdc.js";
import { startConsumer } from "../harness/consumer.js";
import { MB } from "./support.js";
import { useClusterAndBroker } from "../harness/servers.js";

/**
 * Issue 4 item 9: the published table is idle while an unpublished table takes heavy writes
 * for 30 seconds. tera-cdc publishes nothing, yet it keeps confirming the positions the server
 * reports in keepalives, so the slot's retained WAL (pg_current_wal_lsn() - confirmed_flush_lsn)
 * stays small instead of growing with everything written.
 */
const WRITE_SECONDS = Number(process.env.TERA_CDC_WAL_SECONDS ?? 30);
/** Retained WAL allowed at any sample: a few WAL segments, whatever was written. */
const RETAINED_BOUND = 64 * MB;

describe("idle publication, busy database", () => {
  const [pg, broker] = useClusterAndBroker();

  it("keeps the slot's retained WAL small while unpublished tables take heavy writes", async () => {
    await pg.query("CREATE TABLE t_quiet (id_quiet int PRIMARY KEY, quiet_name text)");
    await pg.query("CREATE TABLE t_noise (id int, payload text)");
    const consumer = await startConsumer(broker.url);
    const cdc = await startCdc({ databaseUrl: pg.url, mqttUrl: broker.url, args: ["--tables", "t_quiet", "--slot", "idle", "--publication", "idle"] });
    const retained: number[] = [];
    const sampler = await pg.connect();
    const writer = await pg.connect();
    try {
      const startLsn = (await sampler.query("SELECT pg_current_wal_lsn()::text AS lsn")).rows[0].lsn as string;
      const deadline = Date.now() + WRITE_SECONDS * 1000;
      let statements = 0;
      const writing = (async () => {
        while (Date.now() < deadline) {
          await writer.query("INSERT INTO t_noise SELECT g, repeat(md5(g::text), 8) FROM generate_series(1, 5000) AS g");
          await writer.query("UPDATE t_noise SET id = id + 1 WHERE id % 3 = 0");
          await writer.query("DELETE FROM t_noise WHERE id % 2 = 0");
          statements += 3;
        }
      })();
      while (Date.now() < deadline) {
        const row = (
          await sampler.query("SELECT (pg_current_wal_lsn() - confirmed_flush_lsn)::bigint AS bytes FROM pg_replication_slots WHERE slot_name = 'idle'")
        ).rows[0];
        retained.push(Number(row.bytes));
        await new Promise((r) => setTimeout(r, 500));
      }
      await writing;
      const written = Number(
        (await sampler.query("SELECT (pg_current_wal_lsn() - $1::pg_lsn)::bigint AS bytes", [startLsn])).rows[0].bytes,
      );
      const max = Math.max(...retained);
      console.log(
        `idle slot: ${(written / MB).toFixed(0)} MB of WAL written by ${statements} statements in ${WRITE_SECONDS} s; ` +
          `retained WAL max ${(max / MB).toFixed(2)} MB, median ${(retained.sort((a, b) => a - b)[retained.length >> 1]! / MB).toFixed(2)} MB over ${retained.length} samples`,
      );
      expect(written).toBeGreaterThan(4 * RETAINED_BOUND);
      expect(max).toBeLessThan(RETAINED_BOUND);
      // Nothing of the unpublished table was published, and the stream still works.
      expect(consumer.events).toHaveLength(0);
      await pg.query("INSERT INTO t_quiet VALUES (1, 'still here')");
      const [event] = await consumer.waitForCount(1);
      expect(event!.object).toEqual({ id_quiet: 1, quiet_name: "still here" });
    } finally {
      await sampler.end();
      await writer.end();
      await cdc.stop();
      await consumer.close();
    }
  }, 180_000);
});
