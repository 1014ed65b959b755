import { describe, expect, it } from "vitest";
import { startCdc } from "../harness/cdc.js";
import { type Consumer, startConsumer } from "../harness/consumer.js";
import { waitFor } from "../harness/ports.js";
import { useClusterAndNats } from "../harness/servers.js";
import { committedIds, confirmedPosition, createWorkload, sleep, startWriter, totalOf } from "./support.js";

/**
 * Issue 18.3: `--mqtt-url` lists the nodes of a broker cluster, and losing the node tera-cdc
 * publishes through loses nothing. A three-node NATS cluster (JetStream + MQTT; NATS speaks
 * MQTT 3.1.1, QoS 1) carries the stream; a QoS 1 subscriber sits on node B; node A, listed first,
 * is killed while a few thousand changes are being written. MQTT 3.1.1 has no user properties, so
 * no lsn/seq to dedupe by: the ground truth is PostgreSQL's committed rows, each of which must
 * reach the subscriber (duplicates allowed: the unacknowledged window is sent again to the next node).
 */
const [db, nats] = useClusterAndNats(3);

/** Each model's distinct object ids as the subscriber saw them, and how many arrived more than once. */
function receivedIds(consumer: Consumer): { byModel: Map<string, Set<number>>; duplicates: number } {
  const byModel = new Map<string, Set<number>>();
  let duplicates = 0;
  for (const event of consumer.events) {
    const ids = byModel.get(event.model) ?? new Set<number>();
    const id = Number(event.object.id);
    if (ids.has(id)) duplicates++;
    ids.add(id);
    byModel.set(event.model, ids);
  }
  return { byModel, duplicates };
}

/** Ids as runs, `a-b, c-d`, at most ten. */
function ranges(ids: readonly number[]): string {
  const runs: string[] = [];
  for (let i = 0; i < ids.length && runs.length < 10; ) {
    let j = i;
    while (j + 1 < ids.length && ids[j + 1] === ids[j]! + 1) j++;
    runs.push(i === j ? `${ids[i]}` : `${ids[i]}-${ids[j]}`);
    i = j + 1;
  }
  return runs.join(", ");
}

describe("a broker cluster given as a list of brokers", () => {
  it("fails over to the next node when the one it publishes through is killed mid-stream, losing no committed change", async () => {
    const [a, b, c] = nats.nodes;
    const workload = await createWorkload(db, "nc");
    // A persistent session: should its own connection to node B drop while the cluster re-elects
    // leaders, the broker keeps its QoS 1 messages (what a consumer that must miss nothing does).
    const consumer = await startConsumer(b!.mqttUrl, "module/TeraServer/DatabaseModule/events/#", { protocolVersion: 4, clientId: "nc-subscriber", clean: false });
    const cdc = await startCdc({
      databaseUrl: db.url,
      mqttUrl: [a!.mqttUrl, b!.mqttUrl, c!.mqttUrl].join(","),
      args: ["--tables", workload.tableList, "--slot", "nc_slot", "--publication", "nc_pub", "--max-in-flight", "200"],
    });
    const writer = startWriter(db, workload, { rowsPerTransaction: 20, pauseMs: 5 });
    try {
      expect(cdc.logs()).toMatch(/broker does not speak MQTT 5; using MQTT 3.1.1/);
      await waitFor("the stream to be under way through node A", () => consumer.events.length >= 1500 || undefined, 60_000, 20);
      const beforeKill = consumer.events.length;
      // Publishes node A holds unacknowledged at its death: sent again to node B, or lost.
      const inFlightAtKill = Number((await cdc.health()).body.inFlight ?? 0);
      await a!.kill();
      const committedAtKill = writer.committed();
      // tera-cdc moves to node B (next in the list) and goes on; the writer keeps committing meanwhile.
      await cdc.waitForLog(/broker connection restored/, 60_000);
      await waitFor("the writer to commit a few thousand changes more", () => writer.committed() >= committedAtKill + 100 || undefined, 60_000);
      await writer.stop();

      const expected = await committedIds(db, workload);
      const total = totalOf(expected);
      expect(total).toBeGreaterThan(3000);
      await waitFor(`all ${total} committed changes at the subscriber on node B`, () => {
        let distinct = 0;
        for (const ids of receivedIds(consumer).byModel.values()) distinct += ids.size;
        return distinct >= total || undefined;
      }, 90_000, 200).catch(() => undefined);

      // Every committed row arrived, under exactly one model per table, and nothing else.
      const { byModel, duplicates } = receivedIds(consumer);
      expect(byModel.size).toBe(workload.tables.length);
      for (const [table, ids] of expected) {
        const model = [...byModel.entries()].find(([, got]) => got.has(ids[0]!))?.[0];
        expect(model, `${table}: its first row never arrived`).toBeDefined();
        const got = byModel.get(model!)!;
        const missing = ids.filter((id) => !got.has(id));
        expect(missing.length, `${table}: ${missing.length} of ${ids.length} committed rows never arrived (${ranges(missing)}; ${ids.indexOf(missing[0]!)} rows before the first missing one arrived)`).toBe(0);
        expect(got.size, `${table}: rows arrived that were never committed`).toBe(ids.length);
      }
      // The slot was confirmed only up to what a broker acknowledged: once everything arrived it
      // moves on to the end; tera-cdc is healthy on the next node.
      expect((await cdc.health()).status).toBe(200);
      const confirmed = await confirmedPosition(db, "nc_slot");
      expect(confirmed).toBeGreaterThan(0n);
      console.log(`NATS cluster failover: ${beforeKill} events before node A was killed (${inFlightAtKill} publishes unacknowledged just before), ${total} committed changes all received on node B, ${duplicates} duplicates (the unacknowledged window sent again)`);
      expect(await cdc.stop()).toBe(0);
    } catch (error) {
      console.log(`tera-cdc logs:\n${cdc.logs().slice(-3000)}\nNATS logs:\n${nats.logs()}`);
      throw error;
    } finally {
      await writer.stop();
      cdc.child.kill("SIGKILL");
      await consumer.close();
    }
  }, 240_000);
});
