import { afterEach, describe, expect, it } from "vitest";
import { startBroker } from "../harness/broker.js";
import { runCli, startCdc } from "../harness/cdc.js";
import { startConsumer } from "../harness/consumer.js";
import { waitFor } from "../harness/ports.js";
import { exited } from "../harness/processes.js";
import { type PgVersion, type PostgresServer, startPostgres } from "../harness/postgres.js";

/** `run` against a hot standby: live changes from 16 on (16, 17 and 18 tested); snapshots (a write on the primary) refused; before 16 refused. */
const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => {});
});

async function primaryAndStandby(version: PgVersion): Promise<{ primary: PostgresServer; standby: PostgresServer }> {
  const primary = await startPostgres({ version, settings: { hot_standby_feedback: "on" } });
  cleanups.push(() => primary.close());
  await primary.query("SELECT pg_create_physical_replication_slot('standby_slot', true)");
  await primary.query("CREATE TABLE sd (id int PRIMARY KEY, note text); CREATE PUBLICATION sd_pub FOR TABLE sd");
  const standby = await primary.startStandby!({ primary_slot_name: "standby_slot", hot_standby_feedback: "on" });
  cleanups.push(() => standby.close());
  await waitFor("the standby to replay the publication", async () => (await standby.query("SELECT 1 FROM pg_publication WHERE pubname = 'sd_pub'")).rowCount === 1 || undefined, 60_000);
  return { primary, standby };
}

describe.each([16, 17, 18] as const)("PostgreSQL %i: decoding on a hot standby", (version) => {
  it("run against the standby publishes the primary's changes live; --snapshot initial is refused in one line", async () => {
    const { primary, standby } = await primaryAndStandby(version);
    const broker = await startBroker();
    cleanups.push(() => broker.close());
    const consumer = await startConsumer(broker.url);
    cleanups.push(() => consumer.close());

    const refused = runCli(["run", "--database-url", standby.url, "--mqtt-url", broker.url, "--publication", "sd_pub", "--slot", "sd_refused", "--snapshot", "initial"]);
    expect(await exited(refused.child, 60_000)).toBe(2);
    expect(refused.output().stderr.trim().split("\n").at(-1)).toBe(
      "tera-cdc run: --snapshot initial needs a write on the primary (its watermarks), and --database-url reaches a standby: start once against the primary for the snapshot, or leave out --snapshot initial",
    );

    const cdc = await startCdc({ databaseUrl: standby.url, mqttUrl: broker.url, args: ["--publication", "sd_pub", "--slot", "sd_slot"], waitStreaming: false });
    cleanups.push(async () => cdc.child.kill("SIGKILL"));
    // A slot on a standby waits for the primary's next running-transactions record: ask for it.
    await waitFor("tera-cdc to stream from the standby", async () => {
      await primary.query("SELECT pg_log_standby_snapshot()");
      if (cdc.child.exitCode !== null) throw new Error(`tera-cdc exited: ${cdc.logs().slice(-2000)}`);
      return (await cdc.health().catch(() => null))?.status === 200 || undefined;
    }, 120_000, 500);
    expect(cdc.logs()).toMatch(/decoding on a standby \(PostgreSQL 16\+\): live changes only/);
    await primary.query("INSERT INTO sd SELECT i, 'row ' || i FROM generate_series(1, 50) i");
    await primary.query("UPDATE sd SET note = 'changed' WHERE id = 7");
    const events = await consumer.waitForCount(51, 120_000);
    expect(events.slice(0, 50).map((e) => e.object.id)).toEqual(Array.from({ length: 50 }, (_, i) => i + 1));
    expect(events[50]!.object).toMatchObject({ id: 7, note: "changed" });
    expect((await standby.query("SELECT 1 FROM pg_replication_slots WHERE slot_name = 'sd_slot'")).rowCount).toBe(1);
    expect(await cdc.stop()).toBe(0);
  }, 300_000);
});

describe("PostgreSQL 14: no decoding on a standby", () => {
  it("run against a standby refuses in one line naming the minimum and the fix", async () => {
    const { standby } = await primaryAndStandby(14);
    const broker = await startBroker();
    cleanups.push(() => broker.close());
    const { child, output } = runCli(["run", "--database-url", standby.url, "--mqtt-url", broker.url, "--publication", "sd_pub", "--slot", "sd_slot"]);
    expect(await exited(child, 60_000)).toBe(2);
    expect(output().stderr.trim().split("\n").at(-1)).toMatch(/^tera-cdc run: --database-url reaches a standby, and logical decoding on a standby needs PostgreSQL 16 or later: connect to the primary/);
  }, 300_000);
});
