import { describe, expect, it } from "vitest";
import { startCdc } from "../harness/cdc.js";
import { startConsumer } from "../harness/consumer.js";
import { waitFor } from "../harness/ports.js";
import { checkDelivery, committedIds, confirmedPosition, createWorkload, duplicatesOutsideTail, sleep, totalOf, waitForAll, writeBacklog } from "./support.js";
import { useClusterAndBroker } from "../harness/servers.js";

const [db, broker] = useClusterAndBroker();

describe("tera-cdc killed with SIGKILL mid-stream", () => {
  it("delivers every one of 50,000 committed changes after a restart; the only duplicates are the unconfirmed tail", async () => {
    const workload = await createWorkload(db, "killed");
    const slot = "killed_slot";
    const args = ["--tables", workload.tableList, "--slot", slot, "--publication", "killed_pub"];
    // Slot first (the stream starts from here), then a backlog of 50,000 changes in 500 transactions.
    const first = await startCdc({ databaseUrl: db.url, mqttUrl: broker.url, args });
    const consumer = await startConsumer(broker.url);
    try {
      // The backlog is still being written when the kill lands: on a quiet machine (PostgreSQL 17,
      // 18) a backlog written first was all at the broker before a kill could land mid-stream.
      const writing = writeBacklog(db, workload, 500, 100);
      await waitFor("the stream to be under way", () => consumer.events.length >= 2_000 || undefined, 60_000, 5);
      await first.kill();
      // What the broker still held of the killed instance lands within moments.
      await sleep(300);
      const firstRun = consumer.events.slice();
      await writing;
      const expected = await committedIds(db, workload);
      expect(totalOf(expected)).toBe(50_000);
      // Mid-stream: the kill must have landed before the end, or this test proves nothing.
      expect(firstRun.length).toBeLessThan(50_000);
      const confirmed = await confirmedPosition(db, slot);

      const second = await startCdc({ databaseUrl: db.url, mqttUrl: broker.url, args });
      try {
        await waitForAll(consumer.events, expected);
        // Let any late duplicate land before judging.
        await new Promise((r) => setTimeout(r, 500));
        const report = checkDelivery(consumer.events, expected, { allowReplays: true, replayFromTransactionStart: true });
        expect(report.unique).toBe(50_000);
        expect(report.replays.length).toBeLessThanOrEqual(1);
        // Exactly the unconfirmed tail came twice: every event of a transaction after the slot's
        // confirmed position at the kill (received but not yet confirmed), and nothing before it.
        expect(duplicatesOutsideTail(firstRun, consumer.events, confirmed).slice(0, 5)).toEqual([]);
        console.log(`SIGKILL after ${firstRun.length} events: ${report.duplicates} duplicates in ${report.replays.length} replay(s), all after the confirmed position`);
        expect(await second.stop()).toBe(0);
      } finally {
        second.child.kill("SIGKILL");
      }
    } finally {
      first.child.kill("SIGKILL");
      await consumer.close();
    }
  });
});
