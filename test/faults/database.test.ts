import { readdirSync, readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { type CdcProcess, startCdc } from "../harness/cdc.js";
import { startConsumer } from "../harness/consumer.js";
import { waitFor } from "../harness/ports.js";
import { checkDelivery, committedIds, createWorkload, sleep, startWriter, waitForAll, walsenderPid } from "./support.js";
import { useClusterAndBroker } from "../harness/servers.js";

const [db, broker] = useClusterAndBroker();

/**
 * One fault while a writer keeps committing: tera-cdc streams, the fault strikes, tera-cdc must
 * come back by itself, and the consumer must end up with every committed change, in order,
 * duplicates only as one replayed tail starting at a transaction's first event.
 */
async function survives(prefix: string, fault: (cdc: CdcProcess, slot: string) => Promise<void>): Promise<{ cdc: string; reconnects: number; duplicates: number }> {
  const workload = await createWorkload(db, prefix);
  const slot = `${prefix}_slot`;
  const cdc = await startCdc({ databaseUrl: db.url, mqttUrl: broker.url, args: ["--tables", workload.tableList, "--slot", slot, "--publication", `${prefix}_pub`] });
  const consumer = await startConsumer(broker.url);
  const writer = startWriter(db, workload, { rowsPerTransaction: 20, pauseMs: 10 });
  try {
    await waitFor("the stream to be under way", () => consumer.events.length >= 2000 || undefined, 60_000, 20);
    await fault(cdc, slot);
    await cdc.waitForLog(/replication connection lost/, 60_000);
    await waitFor("tera-cdc to stream again", async () => {
      const health = await cdc.health().catch(() => null);
      return health?.status === 200 && Number(health.body.reconnects) >= 1;
    }, 60_000, 100);
    // More committed after the recovery, then stop writing and compare with the tables.
    const before = writer.committed();
    await waitFor("the writer to commit again", () => writer.committed() >= before + 20 || undefined, 60_000);
    await writer.stop();
    const expected = await committedIds(db, workload);
    await waitForAll(consumer.events, expected, 60_000);
    await sleep(300);
    const report = checkDelivery(consumer.events, expected, { allowReplays: true, replayFromTransactionStart: true });
    const reconnects = Number((await cdc.health()).body.reconnects);
    expect(await cdc.stop()).toBe(0);
    return { cdc: cdc.logs(), reconnects, duplicates: report.duplicates };
  } catch (error) {
    console.log(`tera-cdc logs:\n${cdc.logs().slice(-4000)}\nconsumer holds ${consumer.events.length} events`);
    throw error;
  } finally {
    await writer.stop();
    cdc.child.kill("SIGKILL");
    await consumer.close();
  }
}

/** The pid of the harness' Mosquitto, found by its configuration file (the harness keeps it private). */
function brokerPid(): number {
  const config = `${broker.dir}/mosquitto.conf`;
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/cmdline`, "utf8").split("\0").includes(config)) return Number(entry);
    } catch {
      /* gone meanwhile */
    }
  }
  throw new Error("the broker's process was not found");
}

describe("the database side fails mid-stream", () => {
  it("PostgreSQL restarted (fast shutdown): reconnects, resumes from the confirmed position, nothing lost", async () => {
    const outcome = await survives("pgrestart", async (cdc) => {
      await db.stopServer(); // SIGINT: fast shutdown
      // Operators see it: /healthz answers 503 "reconnecting" while the database is away.
      const health = await waitFor("/healthz to report the lost database", async () => {
        const h = await cdc.health();
        return h.body.status === "reconnecting" ? h : undefined;
      }, 30_000, 50);
      expect(health.status).toBe(503);
      await sleep(1000);
      await db.startServer();
    });
    expect(outcome.reconnects).toBeGreaterThanOrEqual(1);
    console.log(`PostgreSQL restart: ${outcome.reconnects} reconnect(s), ${outcome.duplicates} duplicates`);
  });

  it("walsender terminated by pg_terminate_backend: reconnects, nothing lost", async () => {
    const outcome = await survives("terminated", async (_cdc, slot) => {
      const pid = await walsenderPid(db, slot);
      const result = await db.query("SELECT pg_terminate_backend($1) AS done", [pid]);
      expect(result.rows[0].done).toBe(true);
    });
    expect(outcome.cdc).toMatch(/terminating connection due to administrator command|replication connection closed|Connection terminated/);
    console.log(`walsender terminated: ${outcome.reconnects} reconnect(s), ${outcome.duplicates} duplicates`);
  });

  it("catalog connection closed while idle (an administrator, idle_session_timeout): the next table that needs a catalog look-up is still published", async () => {
    // REPLICA IDENTITY FULL: the key is read from the catalog when the stream first meets the table.
    await db.query("CREATE TABLE catalog_full (id bigint PRIMARY KEY, note text)");
    await db.query("ALTER TABLE catalog_full REPLICA IDENTITY FULL");
    const cdc = await startCdc({ databaseUrl: db.url, mqttUrl: broker.url, args: ["--tables", "catalog_full", "--slot", "catalog_slot", "--publication", "catalog_pub"] });
    const consumer = await startConsumer(broker.url, "module/TeraServer/DatabaseModule/events/catalog_full");
    try {
      const killed = await db.query("SELECT pg_terminate_backend(pid) AS done FROM pg_stat_activity WHERE application_name = 'tera-cdc catalog'");
      expect(killed.rows.map((r) => r.done)).toEqual([true]);
      await db.query("INSERT INTO catalog_full SELECT i, 'row ' || i FROM generate_series(1, 10) i");
      const events = await consumer.waitForCount(10, 30_000);
      expect(events.map((e) => e.object.id)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
      expect(cdc.child.exitCode).toBeNull();
      expect(await cdc.stop()).toBe(0);
    } catch (error) {
      console.log(`tera-cdc logs:\n${cdc.logs().slice(-3000)}`);
      throw error;
    } finally {
      cdc.child.kill("SIGKILL");
      await consumer.close();
    }
  });

  it("wal_sender_timeout expires while the broker is frozen: reconnects, nothing lost", async () => {
    await db.query("ALTER SYSTEM SET wal_sender_timeout = '2s'");
    await db.query("SELECT pg_reload_conf()");
    try {
      const outcome = await survives("senttimeout", async () => {
        // A frozen broker (SIGSTOP): its socket stays open, acknowledgements stop, the window fills
        // and tera-cdc stops reading; 6 s is three times the server's patience.
        const pid = brokerPid();
        process.kill(pid, "SIGSTOP");
        try {
          await sleep(6000);
        } finally {
          process.kill(pid, "SIGCONT");
        }
      });
      expect(outcome.reconnects).toBeGreaterThanOrEqual(1);
      // The walsender gave up on the silent client and closed; tera-cdc noticed when it wrote its next status.
      const lost = /"msg":"replication connection lost: [^"]*"/.exec(outcome.cdc)?.[0];
      expect(lost).toBeDefined();
      console.log(`wal_sender_timeout: ${outcome.reconnects} reconnect(s), ${outcome.duplicates} duplicates; ${lost}`);
    } finally {
      await db.query("ALTER SYSTEM RESET wal_sender_timeout");
      await db.query("SELECT pg_reload_conf()");
    }
  }, 120_000);
});
