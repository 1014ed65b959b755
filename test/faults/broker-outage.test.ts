import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Broker, startBroker } from "../harness/broker.js";
import { startCdc } from "../harness/cdc.js";
import { startConsumer } from "../harness/consumer.js";
import { waitFor } from "../harness/ports.js";
import { type PostgresServer, startPostgres } from "../harness/postgres.js";
import { checkDelivery, committedIds, createWorkload, lsnValue, residentBytes, sleep, startWriter, waitForAll, writeBacklog } from "./support.js";

let db: PostgresServer;
let broker: Broker;

beforeAll(async () => {
  // The broker keeps its sessions and queued messages across the restart (saved on SIGTERM), so
  // what it acknowledged to tera-cdc before going down still reaches the consumer's persistent
  // session afterwards. With the harness default (`persistence false`) a restarted broker forgets
  // what it had acknowledged but not yet delivered, which no publisher can make up for.
  [db, broker] = await Promise.all([
    startPostgres(),
    startBroker({ config: ["persistence true", "persistence_location {dir}/", "autosave_interval 0"] }),
  ]);
});

afterAll(async () => {
  await Promise.all([db?.close(), broker?.close()]);
});

async function sentLsn(slot: string): Promise<string | null> {
  const row = (await db.query("SELECT sent_lsn FROM pg_stat_replication r JOIN pg_replication_slots s ON s.active_pid = r.pid WHERE s.slot_name = $1", [slot])).rows[0] as { sent_lsn: string } | undefined;
  return row?.sent_lsn ?? null;
}

describe("broker stopped for 10 seconds mid-stream", () => {
  it("stops reading WAL while it cannot publish, keeps memory bounded, reconnects with backoff and loses nothing", async () => {
    const workload = await createWorkload(db, "outage");
    const slot = "outage_slot";
    const cdc = await startCdc({ databaseUrl: db.url, mqttUrl: broker.url, args: ["--tables", workload.tableList, "--slot", slot, "--publication", "outage_pub"] });
    // A persistent session (clean start off, fixed client id, QoS 1, session expiry): the broker
    // queues for it while it is away and across its own restart.
    const consumer = await startConsumer(broker.url, undefined, { clean: false, clientId: "outage-consumer", properties: { sessionExpiryInterval: 3600 } });
    const writer = startWriter(db, workload, { rowsPerTransaction: 40, pauseMs: 15 });
    try {
      await waitFor("the stream to be under way", () => consumer.events.length >= 3000 || undefined, 60_000, 20);
      const rssBefore = residentBytes(cdc.child.pid!);

      await broker.stop();
      const stoppedAt = Date.now();
      await writer.stop();
      const sentAtStop = (await sentLsn(slot))!;
      // While the broker is away, 30,000 more changes of ~1.5 kB each (below TOAST compression):
      // about 48 MB of WAL, far more than the socket buffers between PostgreSQL and tera-cdc hold.
      await writeBacklog(db, workload, 300, 100, 10_000_000, 1500);
      const rss: number[] = [];
      const sent: string[] = [];
      const states: string[] = [];
      // The outage lasts at least 10 s, and until the walsender's sent position has stood still for
      // the last three samples (on a loaded machine the socket buffers take longer to fill).
      const settled = () => sent.length >= 3 && new Set(sent.slice(-3)).size === 1;
      while ((Date.now() - stoppedAt < 10_000 || !settled()) && Date.now() - stoppedAt < 45_000) {
        rss.push(residentBytes(cdc.child.pid!));
        if (Date.now() - stoppedAt > 5000) sent.push((await sentLsn(slot))!);
        states.push(String((await cdc.health()).body.status));
        await sleep(500);
      }
      const walAtEnd = (await db.query("SELECT pg_current_wal_lsn()::text AS lsn")).rows[0].lsn as string;
      await broker.start();
      const restartedAt = Date.now();
      await cdc.waitForLog(/broker connection restored/, 60_000);
      const reconnectMs = Date.now() - restartedAt;
      await cdc.waitForStreaming(60_000);

      const expected = await committedIds(db, workload);
      await waitForAll(consumer.events, expected, 90_000);
      await sleep(500);
      const report = checkDelivery(consumer.events, expected, { allowReplays: true });

      // While the broker was away, tera-cdc said so and stopped reading: the walsender's sent
      // position stood still during the last seconds of the outage, having moved by no more than
      // the socket buffers hold, while the WAL waiting to be sent grew by ~48 MB.
      expect(states).toContain("reconnecting");
      expect(states).not.toContain("streaming");
      expect(settled()).toBe(true);
      const readDuringOutage = Number(lsnValue(sent.at(-1)!) - lsnValue(sentAtStop));
      const heldByPostgres = Number(lsnValue(walAtEnd) - lsnValue(sent.at(-1)!));
      expect(readDuringOutage).toBeLessThan(16 * 2 ** 20);
      expect(heldByPostgres).toBeGreaterThan(24 * 2 ** 20);
      const peak = Math.max(...rss);
      // Bounded: memory did not follow the WAL written meanwhile.
      expect(peak - rssBefore).toBeLessThan(32 * 2 ** 20);
      expect(cdc.logs()).toMatch(/broker connection lost; reconnecting/);
      // Backoff: the refused connection attempts come further and further apart.
      const attempts = cdc.logs().split("\n").filter((l) => l.includes('"msg":"broker error: connect ECONNREFUSED')).map((l) => (JSON.parse(l) as { time: number }).time);
      const gaps = attempts.slice(1).map((t, i) => t - attempts[i]!);
      expect(gaps.length).toBeGreaterThanOrEqual(3);
      for (let i = 1; i < gaps.length; i++) expect(gaps[i]!).toBeGreaterThan(gaps[i - 1]! * 1.5);
      const mib = (bytes: number) => (bytes / 2 ** 20).toFixed(1);
      console.log(
        `broker outage: RSS before ${mib(rssBefore)} MiB, peak during the 10 s outage ${mib(peak)} MiB; ` +
          `walsender sent ${mib(readDuringOutage)} MiB after the stop, then waited with ${mib(heldByPostgres)} MiB of WAL unsent; ` +
          `connection attempts ${gaps.join(", ")} ms apart, reconnected ${reconnectMs} ms after the broker came back; ${report.unique} changes, ${report.duplicates} duplicates in ${report.replays.length} replay(s)`,
      );
      expect(await cdc.stop()).toBe(0);
    } catch (error) {
      console.log(`tera-cdc logs:\n${cdc.logs().slice(-5000)}\nconsumer holds ${consumer.events.length} events`);
      throw error;
    } finally {
      await writer.stop();
      cdc.child.kill("SIGKILL");
      await consumer.close();
    }
  }, 150_000);
});

describe("stopped while the broker is down", () => {
  it("SIGTERM exits 0 in bounded time, and a restart delivers what was not acknowledged", async () => {
    const workload = await createWorkload(db, "stopdown");
    const args = ["--tables", workload.tableList, "--slot", "stopdown_slot", "--publication", "stopdown_pub"];
    const consumer = await startConsumer(broker.url, undefined, { clean: false, clientId: "stopdown-consumer", properties: { sessionExpiryInterval: 3600 } });
    const cdc = await startCdc({ databaseUrl: db.url, mqttUrl: broker.url, args });
    let restarted: Awaited<ReturnType<typeof startCdc>> | null = null;
    try {
      await writeBacklog(db, workload, 200, 100);
      // Early in the 20,000-row transaction: the broker must go down while tera-cdc still has messages
      // in flight, and tera-cdc can publish (and have acknowledged) the whole transaction before a
      // consumer slowed by a loaded machine has read 2,000 of them.
      await waitFor("the stream to be under way", () => consumer.events.length >= 200 || undefined, 60_000, 5);
      await broker.stop();
      await sleep(500);
      const stoppingAt = Date.now();
      const code = await cdc.stop();
      const stopMs = Date.now() - stoppingAt;
      expect(code).toBe(0);
      // A bounded wait for acknowledgements that cannot come (10 s), not a hang.
      expect(stopMs).toBeLessThan(25_000);
      expect(cdc.logs()).toMatch(/stopping before the broker acknowledged everything/);
      await broker.start();
      restarted = await startCdc({ databaseUrl: db.url, mqttUrl: broker.url, args });
      const expected = await committedIds(db, workload);
      await waitForAll(consumer.events, expected, 60_000);
      await sleep(300);
      checkDelivery(consumer.events, expected, { allowReplays: true });
      console.log(`SIGTERM with the broker down: exited 0 after ${stopMs} ms`);
      expect(await restarted.stop()).toBe(0);
    } catch (error) {
      console.log(`tera-cdc logs:\n${cdc.logs().slice(-3000)}\n${restarted?.logs().slice(-3000) ?? ""}`);
      throw error;
    } finally {
      cdc.child.kill("SIGKILL");
      restarted?.child.kill("SIGKILL");
      await consumer.close();
    }
  }, 120_000);
});
