import { describe, expect, it } from "vitest";
import { startCdc } from "../harness/cdc.js";
import { startConsumer } from "../harness/consumer.js";
import { waitFor } from "../harness/ports.js";
import { checkDelivery, committedIds, confirmedPosition, createWorkload, eventKey, lsnValue, sleep, startWriter, waitForAll, walsenderPid } from "./support.js";
import { useClusterAndBroker } from "../harness/servers.js";

const [db, broker] = useClusterAndBroker();

describe("two instances on the same slot", () => {
  it("the second waits as a standby and takes over within seconds when the first is killed; only the unconfirmed tail is published twice", async () => {
    const workload = await createWorkload(db, "pair");
    // Default --standby-poll-ms (2 s): the takeover time measured is what a default deployment gets.
    const args = ["--tables", workload.tableList, "--slot", "pair_slot", "--publication", "pair_pub"];
    const active = await startCdc({ databaseUrl: db.url, mqttUrl: broker.url, args });
    const standby = await startCdc({ databaseUrl: db.url, mqttUrl: broker.url, args, waitStreaming: false });
    const consumer = await startConsumer(broker.url);
    const writer = startWriter(db, workload, { rowsPerTransaction: 20, pauseMs: 10 });
    try {
      const waiting = await waitFor("the second instance to wait as a standby", async () => {
        const health = await standby.health().catch(() => null);
        return health?.body.status === "standby" ? health : undefined;
      }, 30_000, 100);
      expect(waiting.status).toBe(503);
      await standby.waitForLog(/waiting as a standby/);
      await waitFor("the stream to be under way", () => consumer.events.length >= 2000 || undefined, 60_000, 20);
      // The standby published nothing while the first instance held the slot.
      expect(Number((await standby.health()).body.messages)).toBe(0);

      const killedWalsender = await walsenderPid(db, "pair_slot");
      const killedAt = Date.now();
      await active.kill();
      // The slot's confirmed position at the kill: final once the killed instance's walsender has
      // exited (it applies what the process had sent), read before the standby confirms anything.
      await waitFor("the killed instance's walsender to exit", async () => (await db.query("SELECT 1 FROM pg_stat_activity WHERE pid = $1", [killedWalsender])).rowCount === 0 || undefined, 30_000, 10);
      const confirmed = await confirmedPosition(db, "pair_slot");
      // What the broker still had of the killed instance lands within moments; anything after is the standby's.
      await sleep(300);
      const firstRun = consumer.events.slice();
      const fromKilled = firstRun.length;
      const first = await waitFor("the first event from the standby", () => consumer.events[fromKilled], 30_000, 5);
      const takeoverMs = first.receivedAt - killedAt;
      expect((await standby.health()).status).toBe(200);

      const before = writer.committed();
      await waitFor("the writer to commit more", () => writer.committed() >= before + 20 || undefined, 30_000);
      await writer.stop();
      const expected = await committedIds(db, workload);
      await waitForAll(consumer.events, expected, 60_000);
      await sleep(300);
      const report = checkDelivery(consumer.events, expected, { allowReplays: true, replayFromTransactionStart: true });
      expect(report.replays.length).toBeLessThanOrEqual(1);
      // Published by both: only transactions after the confirmed position at the kill. (Which events
      // came from the killed instance cannot be told by arrival time: the standby may take over
      // within the 300 ms above, so its first events can be in firstRun.)
      const seen = new Map<string, number>();
      for (const event of consumer.events) seen.set(eventKey(event), (seen.get(eventKey(event)) ?? 0) + 1);
      const confirmedTwice = [...seen].filter(([key, count]) => count > 1 && lsnValue(key.slice(0, key.lastIndexOf("/"))) < confirmed).map(([key]) => key);
      expect(confirmedTwice.slice(0, 5)).toEqual([]);
      expect(firstRun.length).toBeGreaterThan(0);
      // Within seconds: the standby polls the slot every 2 s by default.
      expect(takeoverMs).toBeLessThan(15_000);
      console.log(`standby takeover: ${takeoverMs} ms from SIGKILL to the standby's first event; ${report.duplicates} duplicates (the unconfirmed tail)`);
      expect(await standby.stop()).toBe(0);
    } catch (error) {
      console.log(`standby logs:\n${standby.logs().slice(-3000)}`);
      throw error;
    } finally {
      await writer.stop();
      active.child.kill("SIGKILL");
      standby.child.kill("SIGKILL");
      await consumer.close();
    }
  });
});
