import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it, onTestFinished } from "vitest";
import { type CdcProcess, startCdc } from "../harness/cdc.js";
import { type Consumer, startConsumer } from "../harness/consumer.js";
import { waitFor } from "../harness/ports.js";
import { checkDelivery, committedIds, confirmedPosition, createWorkload, lsnValue, sleep, startWriter, totalOf, waitForAll, type Workload, writeBacklog } from "./support.js";
import { useClusterAndBroker } from "../harness/servers.js";

/**
 * Restart semantics, one case per test, measured: changes lost (must be 0 everywhere) and
 * duplicates (0 after a clean stop, even across a clean PostgreSQL restart; otherwise a tail whose
 * size is printed and bounded). docs/guarantees.md's restart table is filled from these lines
 * (`RESTART <case>: ...`). The cluster comes from the harness, so it runs on whichever
 * PostgreSQL version the harness starts.
 */

const [db, broker] = useClusterAndBroker();

interface Setup {
  readonly workload: Workload;
  readonly slot: string;
  readonly args: string[];
  readonly consumer: Consumer;
}

async function setUp(prefix: string): Promise<Setup> {
  const workload = await createWorkload(db, prefix);
  const slot = `${prefix}_slot`;
  const args = ["--tables", workload.tableList, "--slot", slot, "--publication", `${prefix}_pub`];
  const consumer = await startConsumer(broker.url);
  onTestFinished(() => consumer.close());
  return { workload, slot, args, consumer };
}

/** Every committed change arrived (by lsn/seq), in order; returns the duplicates. */
async function judge(setup: Setup, label: string): Promise<number> {
  const expected = await committedIds(db, setup.workload);
  await waitForAll(setup.consumer.events, expected, 90_000);
  // Let a late duplicate land before counting.
  await sleep(500);
  const report = checkDelivery(setup.consumer.events, expected, { allowReplays: true, replayFromTransactionStart: true });
  expect(report.unique).toBe(totalOf(expected));
  console.log(`RESTART ${label}: ${totalOf(expected)} committed, 0 lost, ${report.duplicates} duplicates in ${report.replays.length} replay(s)`);
  return report.duplicates;
}

/** The data directory's postmaster pid (first line of postmaster.pid). */
async function postmasterPid(): Promise<number> {
  const dir = (await db.query("SHOW data_directory")).rows[0].data_directory as string;
  return Number(readFileSync(join(dir, "postmaster.pid"), "utf8").split("\n")[0]);
}

async function withCdc<T>(args: string[], work: (cdc: CdcProcess) => Promise<T>): Promise<T> {
  const cdc = await startCdc({ databaseUrl: db.url, mqttUrl: broker.url, args });
  try {
    return await work(cdc);
  } catch (error) {
    console.log(`tera-cdc logs:\n${cdc.logs().slice(-4000)}`);
    throw error;
  } finally {
    cdc.child.kill("SIGKILL");
  }
}

describe("restart semantics (docs/guarantees.md)", { timeout: 240_000 }, () => {
  it("clean stop, then start: nothing lost, nothing twice", async () => {
    const setup = await setUp("rs_clean");
    await withCdc(setup.args, async (cdc) => {
      await writeBacklog(db, setup.workload, 20, 20);
      await waitForAll(setup.consumer.events, await committedIds(db, setup.workload));
      expect(await cdc.stop()).toBe(0);
    });
    await writeBacklog(db, setup.workload, 20, 20, 1_000);
    await withCdc(setup.args, async (cdc) => {
      expect(await judge(setup, "clean stop + start")).toBe(0);
      expect(await cdc.stop()).toBe(0);
    });
  });

  it("clean stop in the middle of a transaction, then start: the transaction is finished first, nothing lost, nothing twice", async () => {
    const setup = await setUp("rs_midtx");
    // 500-row transactions through a window of 50 messages: at any moment tera-cdc is in the middle of one.
    const args = [...setup.args, "--max-in-flight", "50"];
    let countAtStop = 0;
    await withCdc(args, async (cdc) => {
      await writeBacklog(db, setup.workload, 40, 500);
      await setup.consumer.waitForCount(2_250, 90_000);
      countAtStop = setup.consumer.events.length;
      expect(await cdc.stop()).toBe(0);
    });
    const stoppedAt = setup.consumer.events.length;
    await withCdc(args, async (cdc) => {
      const duplicates = await judge(setup, "clean stop mid-transaction + start");
      console.log(`RESTART clean stop mid-transaction: stopped after ${stoppedAt} of 20,000 events`);
      // It stops reading at the end of the transaction in progress, not at the end of the backlog.
      expect(stoppedAt).toBeLessThanOrEqual(countAtStop + 1_500);
      expect(duplicates).toBe(0);
      expect(await cdc.stop()).toBe(0);
    });
  });

  it("clean stop, clean PostgreSQL restart, start: PostgreSQL remembers the confirmed position, nothing twice", async () => {
    const setup = await setUp("rs_pgclean");
    await withCdc(setup.args, async (cdc) => {
      await writeBacklog(db, setup.workload, 20, 20);
      await waitForAll(setup.consumer.events, await committedIds(db, setup.workload));
      expect(await cdc.stop()).toBe(0);
      expect(cdc.logs()).not.toMatch(/may not survive a PostgreSQL restart/);
    });
    const confirmedAtStop = await confirmedPosition(db, setup.slot);
    await db.restart(); // fast shutdown: a clean stop with a shutdown checkpoint
    expect(await confirmedPosition(db, setup.slot)).toBe(confirmedAtStop);
    await writeBacklog(db, setup.workload, 20, 20, 1_000);
    await withCdc(setup.args, async (cdc) => {
      expect(await judge(setup, "clean stop + clean PostgreSQL restart + start")).toBe(0);
      expect(await cdc.stop()).toBe(0);
    });
  });

  it("never reports a confirmed position of 0/0 while streaming", async () => {
    const setup = await setUp("rs_zero");
    // A slot with a history, then a fresh start on it with nothing new to confirm.
    await withCdc(setup.args, async (cdc) => {
      await writeBacklog(db, setup.workload, 2, 5);
      await waitForAll(setup.consumer.events, await committedIds(db, setup.workload));
      expect(await cdc.stop()).toBe(0);
    });
    await withCdc(setup.args, async (cdc) => {
      const line = await cdc.waitForLog(/[^\n]*"msg":"streaming"[^\n]*/);
      expect(line).not.toMatch(/"confirmedLsn":"0\/0"/);
      const health = await cdc.health();
      expect(health.body.confirmedLsn).not.toBe("0/0");
      expect(await cdc.stop()).toBe(0);
      expect(cdc.logs()).not.toMatch(/"confirmedLsn":"0\/0"/);
    });
  });

  /** A writer keeps committing while `fault` strikes a running tera-cdc; it must come back by itself. */
  async function underLoad(prefix: string, label: string, fault: () => Promise<void>): Promise<number> {
    const setup = await setUp(prefix);
    return await withCdc(setup.args, async (cdc) => {
      const writer = startWriter(db, setup.workload, { rowsPerTransaction: 20, pauseMs: 10 });
      try {
        await waitFor("the stream to be under way", () => setup.consumer.events.length >= 1000 || undefined, 60_000, 20);
        await fault();
        await cdc.waitForLog(/replication connection lost/, 60_000);
        await waitFor("tera-cdc to stream again", async () => {
          const health = await cdc.health().catch(() => null);
          return health?.status === 200 && Number(health.body.reconnects) >= 1;
        }, 90_000, 100);
        const before = writer.committed();
        await waitFor("the writer to commit again", () => writer.committed() >= before + 20 || undefined, 60_000);
      } finally {
        await writer.stop();
      }
      const duplicates = await judge(setup, label);
      expect(await cdc.stop()).toBe(0);
      return duplicates;
    });
  }

  it("clean PostgreSQL restart under a running tera-cdc: nothing lost", async () => {
    await underLoad("rs_pgrestart", "clean PostgreSQL restart under running tera-cdc", () => db.restart());
  });

  it("PostgreSQL crash (immediate shutdown) under a running tera-cdc: nothing lost", async () => {
    await underLoad("rs_pgcrash", "PostgreSQL immediate shutdown under running tera-cdc", async () => {
      process.kill(await postmasterPid(), "SIGQUIT"); // immediate shutdown: no checkpoint, crash recovery at start
      await waitFor("PostgreSQL to be gone", async () => {
        try {
          await db.query("SELECT 1");
          return undefined;
        } catch {
          return true;
        }
      }, 30_000, 50);
      await db.stopServer(); // reaps the harness' process
      await db.startServer();
    });
  });

  it("SIGKILL of tera-cdc: nothing lost, the duplicates are the unconfirmed tail", async () => {
    const setup = await setUp("rs_kill");
    let writer: ReturnType<typeof startWriter> | null = null;
    try {
      await withCdc(setup.args, async (cdc) => {
        // The slot exists now: every change the writer commits from here on is streamed.
        writer = startWriter(db, setup.workload, { rowsPerTransaction: 20, pauseMs: 10 });
        await waitFor("the stream to be under way", () => setup.consumer.events.length >= 1000 || undefined, 60_000, 20);
        await cdc.kill();
      });
      await sleep(300);
      const published = setup.consumer.events.length;
      const confirmed = await confirmedPosition(db, setup.slot);
      await withCdc(setup.args, async (cdc) => {
        const before = writer!.committed();
        await waitFor("the writer to commit again", () => writer!.committed() >= before + 20 || undefined, 60_000);
        await writer!.stop();
        const duplicates = await judge(setup, "SIGKILL of tera-cdc");
        const tail = setup.consumer.events.slice(0, published).filter((e) => lsnValue(e.lsn) >= confirmed).length;
        console.log(`RESTART SIGKILL of tera-cdc: ${tail} events published after the slot's confirmed position at the kill`);
        expect(duplicates).toBeLessThanOrEqual(tail);
        expect(await cdc.stop()).toBe(0);
      });
    } finally {
      await (writer as ReturnType<typeof startWriter> | null)?.stop();
    }
  });
});
