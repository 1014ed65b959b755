import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { type Broker, startBroker } from "../harness/broker.js";
import { startCdc } from "../harness/cdc.js";
import { startConsumer } from "../harness/consumer.js";
import { waitFor } from "../harness/ports.js";
import { exited } from "../harness/processes.js";
import { type PgVersion, type PostgresServer, startPostgres } from "../harness/postgres.js";
import { committedIds, createWorkload, eventKey, startWriter, totalOf, waitForAll } from "../faults/support.js";
import { intArg, rpcClient, stringArg } from "../snapshot/support.js";

/**
 * A primary, a streaming physical standby, tera-cdc on a two-host --database-url; the primary is
 * killed (SIGKILL) mid-workload and the standby promoted. On 17+ the slot is a failover slot
 * synchronised to the standby (sync_replication_slots, synchronized_standby_slots): tera-cdc
 * follows the new primary and every row it holds is published. Before 17 the slot is not on the
 * standby: tera-cdc stops with the message of a gone slot instead of starting over.
 */
const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => {});
});

async function primaryAndStandby(version: PgVersion): Promise<{ primary: PostgresServer; standby: PostgresServer; broker: Broker }> {
  const [primary, broker] = await Promise.all([startPostgres({ version, settings: { hot_standby_feedback: "on" } }), startBroker()]);
  cleanups.push(() => primary.close(), () => broker.close());
  await primary.query("SELECT pg_create_physical_replication_slot('standby_slot', true)");
  const failoverSlots = version >= 17;
  // The settings docs/operations.md gives for failover slots.
  const standby = await primary.startStandby!({
    primary_slot_name: "standby_slot",
    hot_standby_feedback: "on",
    ...(failoverSlots ? { sync_replication_slots: "on" } : {}),
  });
  cleanups.push(() => standby.close());
  if (failoverSlots) {
    await primary.query("ALTER SYSTEM SET synchronized_standby_slots = 'standby_slot'");
    await primary.query("SELECT pg_reload_conf()");
  }
  await waitFor("the standby to stream from the primary", async () => (await primary.query("SELECT 1 FROM pg_stat_replication WHERE state = 'streaming'")).rowCount === 1 || undefined, 60_000);
  return { primary, standby, broker };
}

function twoHostUrl(primary: PostgresServer, standby: PostgresServer): string {
  return `postgres://postgres@127.0.0.1:${primary.port},127.0.0.1:${standby.port}/postgres?target_session_attrs=read-write`;
}

describe.each([17, 18] as const)("PostgreSQL %i: failover slot", (version) => {
  it("the primary is killed mid-workload and the standby promoted: tera-cdc follows it and publishes every row the new primary holds", async () => {
    const { primary, standby, broker } = await primaryAndStandby(version);
    const workload = await createWorkload(primary, "fo");
    const consumer = await startConsumer(broker.url);
    cleanups.push(() => consumer.close());
    const dataDir = mkdtempSync(join(tmpdir(), "tera-cdc-failover-"));
    cleanups.push(async () => rmSync(dataDir, { recursive: true, force: true }));
    const cdc = await startCdc({
      databaseUrl: twoHostUrl(primary, standby),
      mqttUrl: broker.url,
      args: ["--tables", workload.tableList, "--slot", "fo_slot", "--publication", "fo_pub", "--rpc"],
      env: { TERA_CDC_DATA_DIR: dataDir },
      waitStreaming: false,
    });
    cleanups.push(async () => cdc.child.kill("SIGKILL"));
    await cdc.waitForStreaming(120_000).catch((error: Error) => {
      throw new Error(`${error.message}\n${cdc.logs().slice(-3000)}`);
    });
    expect((await primary.query("SELECT failover FROM pg_replication_slots WHERE slot_name = 'fo_slot'")).rows[0].failover).toBe(true);
    const writer = startWriter(primary, workload, { rowsPerTransaction: 20, pauseMs: 10 });
    try {
      await waitFor("the stream to be under way", () => consumer.events.length >= 1000 || undefined, 120_000, 50);
      await waitFor("the failover slot on the standby", async () => {
        const row = (await standby.query("SELECT synced, confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = 'fo_slot'")).rows[0];
        return row?.synced === true && row.confirmed_flush_lsn !== null ? true : undefined;
      }, 120_000, 200);
      const beforeKill = consumer.events.length;
      await primary.kill!();
      await writer.stop();
      await standby.query("SELECT pg_promote()");
      await cdc.waitForLog(/following another host of the database URL/, 120_000);
      // The new primary takes writes; tera-cdc publishes them too.
      const after = startWriter(standby, workload, { rowsPerTransaction: 20, pauseMs: 10, firstId: 50_000_000 });
      await waitFor("writes on the new primary", () => after.committed() >= 20 || undefined, 60_000);
      await after.stop();
      const expected = await committedIds(standby, workload);
      await waitForAll(consumer.events, expected, 120_000);
      const published = new Map<string, Set<number>>();
      for (const event of consumer.events) {
        const table = `public.${event.model}`; // committedIds keys by schema.table; the model of fo_a is fo_a
        if (!published.has(table)) published.set(table, new Set());
        published.get(table)!.add(Number(event.object.id));
      }
      for (const [table, ids] of expected) {
        // Nothing lost, and nothing the new primary does not hold (synchronized_standby_slots: no change reached tera-cdc before the standby).
        expect([...(published.get(table) ?? [])].sort((a, b) => a - b)).toEqual(ids);
      }
      // A snapshot asked for after the failover reads the new primary (the old one is dead).
      const rpc = await rpcClient(broker.url);
      cleanups.push(() => rpc.close());
      const id = (await rpc.call("snapshot", [stringArg(workload.tables[0]!)])).return_value as number;
      expect(typeof id).toBe("number");
      const report = await waitFor("the snapshot to end", async () => {
        const reply = await rpc.call("snapshot_status", [intArg(id)]);
        return reply.return_value?.status !== "running" ? (reply.return_value as Record<string, unknown>) : undefined;
      }, 120_000, 300);
      expect(report).toMatchObject({ status: "done", rows: expected.get(`public.${workload.tables[0]}`)!.length });
      const duplicates = consumer.events.length - new Set(consumer.events.map(eventKey)).size;
      console.log(`PostgreSQL ${version} failover: ${totalOf(expected)} rows, ${beforeKill} events before the kill, ${duplicates} published twice (after the synced slot's position)`);
      expect(cdc.child.exitCode).toBeNull();
      // The stream record names the new primary's timeline (a timeline is the WAL file name's first 8 hex digits).
      const timeline = Number.parseInt((await standby.query("SELECT substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8) AS t")).rows[0].t, 16);
      expect(timeline).toBeGreaterThan(1);
      expect(cdc.logs()).toContain(`now on timeline ${timeline}`);
      expect(await cdc.stop()).toBe(0);
      expect(JSON.parse(readFileSync(join(dataDir, "slot-fo_slot.json"), "utf8"))).toMatchObject({ slot: "fo_slot", timeline });
    } catch (error) {
      console.log(`tera-cdc logs:\n${cdc.logs().slice(-4000)}`);
      throw error;
    } finally {
      await writer.stop();
    }
  }, 400_000);
});

describe.each([14, 15, 16] as const)("PostgreSQL %i: no failover slots", (version) => {
  it("after the promotion the slot is not on the new primary: tera-cdc stops (exit 2) saying the slot is gone, the failover and what may be missed, and creates no slot", async () => {
    const { primary, standby, broker } = await primaryAndStandby(version);
    const workload = await createWorkload(primary, "nofo");
    const consumer = await startConsumer(broker.url);
    cleanups.push(() => consumer.close());
    const cdc = await startCdc({ databaseUrl: twoHostUrl(primary, standby), mqttUrl: broker.url, args: ["--tables", workload.tableList, "--slot", "nofo_slot", "--publication", "nofo_pub"], waitStreaming: false });
    cleanups.push(async () => cdc.child.kill("SIGKILL"));
    await cdc.waitForStreaming(120_000).catch((error: Error) => {
      throw new Error(`${error.message}\n${cdc.logs().slice(-3000)}`);
    });
    const writer = startWriter(primary, workload, { rowsPerTransaction: 20, pauseMs: 10 });
    try {
      await waitFor("the stream to be under way", () => consumer.events.length >= 500 || undefined, 120_000, 50);
      await primary.kill!();
      await writer.stop();
      await standby.query("SELECT pg_promote()");
      const code = await exited(cdc.child, 180_000);
      const last = cdc.logs().trim().split("\n").at(-1)!;
      expect(code, cdc.logs().slice(-3000)).toBe(2);
      expect(last).toMatch(/^tera-cdc run: replication slot "nofo_slot" is gone: tera-cdc streamed from it \(system \d+, database "postgres", timeline 1\) and confirmed up to [0-9A-F]+\/[0-9A-F]+ at /);
      expect(last).toMatch(/The server's timeline is now 2 \(was 1\): it was promoted from a standby \(a failover\).*To go on anyway, start once with --start-afresh/);
      expect((await standby.query("SELECT count(*)::int AS n FROM pg_replication_slots WHERE slot_type = 'logical'")).rows[0].n).toBe(0);
    } finally {
      await writer.stop();
    }
  }, 400_000);
});
