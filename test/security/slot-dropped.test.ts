import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { startCdc } from "../harness/cdc.js";
import { startConsumer } from "../harness/consumer.js";
import { waitFor } from "../harness/ports.js";
import { exited } from "../harness/processes.js";
import { useClusterAndBroker } from "../harness/servers.js";

/**
 * Issue 14's reproduction: a snapshot filter dropped the slot; on restart `run` silently created a
 * new slot and a change made in between was never published. Here the slot is dropped with SQL
 * directly (what any role with REPLICATION can do), stopped or under a running tera-cdc.
 */
const [db, broker] = useClusterAndBroker();
const dirs: string[] = [];

afterAll(async () => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

function dataDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "tera-cdc-slot-dropped-"));
  dirs.push(dir);
  return dir;
}

async function slotExists(slot: string): Promise<boolean> {
  return (await db.query("SELECT 1 FROM pg_replication_slots WHERE slot_name = $1", [slot])).rowCount === 1;
}

describe("a dropped slot is never silently replaced", () => {
  it("dropped while tera-cdc was stopped: the restart refuses (exit 2, says what may be missed); --start-afresh with --snapshot initial creates a new slot and republishes the row", async () => {
    await db.query("CREATE TABLE dropped_a (id int PRIMARY KEY, note text)");
    const dir = dataDir();
    const args = ["--tables", "dropped_a", "--slot", "slot_a", "--publication", "pub_a", "--data-dir", dir];
    const consumer = await startConsumer(broker.url);
    try {
      const first = await startCdc({ databaseUrl: db.url, mqttUrl: broker.url, args });
      await db.query("INSERT INTO dropped_a VALUES (1, 'before')");
      await consumer.waitForCount(1);
      expect(await first.stop()).toBe(0);
      const record = JSON.parse(readFileSync(join(dir, "slot-slot_a.json"), "utf8"));
      expect(record).toMatchObject({ slot: "slot_a", database: "postgres", timeline: 1 });

      await db.query("SELECT pg_drop_replication_slot('slot_a')");
      await db.query("INSERT INTO dropped_a VALUES (2, 'in between')");

      const second = await startCdc({ databaseUrl: db.url, mqttUrl: broker.url, args, waitStreaming: false });
      const code = await exited(second.child, 60_000);
      const last = second.logs().trim().split("\n").at(-1)!;
      expect(code, second.logs()).toBe(2);
      expect(last).toMatch(
        new RegExp(`^tera-cdc run: replication slot "slot_a" is gone: tera-cdc streamed from it \\(system \\d+, database "postgres", timeline 1\\) and confirmed up to ${record.confirmedLsn.replace("/", "\\/")} at `),
      );
      expect(last).toMatch(/changes committed after .* may never have been published.* To go on anyway, start once with --start-afresh/);
      expect(await slotExists("slot_a")).toBe(false);

      const afresh = await startCdc({ databaseUrl: db.url, mqttUrl: broker.url, args: [...args, "--start-afresh", "--snapshot", "initial"] });
      await afresh.waitForLog(/starting afresh: replication slot \\?"slot_a\\?" is gone/);
      // The row written while no slot existed comes back through the initial snapshot.
      const republished = await waitFor("row 2 to be published", () => consumer.events.find((e) => e.object.id === 2), 60_000);
      expect(republished.object.note).toBe("in between");
      expect(await slotExists("slot_a")).toBe(true);
      expect(await afresh.stop()).toBe(0);
    } finally {
      await consumer.close();
    }
  }, 240_000);

  it("dropped under a running tera-cdc (walsender terminated, slot dropped): it stops with the same message instead of reconnecting forever or recreating it", async () => {
    await db.query("CREATE TABLE dropped_b (id int PRIMARY KEY)");
    const args = ["--tables", "dropped_b", "--slot", "slot_b", "--publication", "pub_b", "--data-dir", dataDir()];
    const cdc = await startCdc({ databaseUrl: db.url, mqttUrl: broker.url, args });
    try {
      // The attack's SQL: end the walsender, drop the slot before tera-cdc reconnects (it is busy again at once).
      await waitFor("the slot to be dropped", async () => {
        await db.query("SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = 'slot_b' AND active_pid IS NOT NULL");
        try {
          await db.query("SELECT pg_drop_replication_slot('slot_b')");
          return true;
        } catch {
          return undefined;
        }
      }, 30_000, 20);
      await db.query("INSERT INTO dropped_b VALUES (1)");
      const code = await exited(cdc.child, 60_000);
      expect(code, cdc.logs()).toBe(2);
      expect(cdc.logs().trim().split("\n").at(-1)).toMatch(/^tera-cdc run: replication slot "slot_b" is gone: .* To go on anyway, start once with --start-afresh/);
      expect(await slotExists("slot_b")).toBe(false);
    } finally {
      cdc.child.kill("SIGKILL");
    }
  }, 120_000);
});
