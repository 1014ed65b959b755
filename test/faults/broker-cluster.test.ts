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
    // A second one on node C: should B's subscriber miss changes, whether C's got them tells the
    // cluster's delivery from tera-cdc's publishing.
    const witness = await startConsumer(c!.mqttUrl, "module/TeraServer/DatabaseModule/events/#", { protocolVersion: 4, clientId: "nc-witness", clean: false });
    const cdc = await startCdc({
      databaseUrl: db.url,
      mqttUrl: [a!.mqttUrl, b!.mqttUrl, c!.mqttUrl].join(","),
      args: ["--tables", workload.tableList, "--slot", "nc_slot", "--publication", "nc_pub", "--max-in-flight", "200"],
    });
    // About 1,300 rows/s at most: a NATS cluster that has lost a node can take PUBLISHes at only a few
    // hundred a second while it re-elects, and a faster writer (27,620 rows before the kill in one
    // quiet CI run, tera-cdc 132 s behind and still streaming) outlasts the wait for delivery below.
    const writer = startWriter(db, workload, { rowsPerTransaction: 20, pauseMs: 15 });
    try {
      expect(cdc.logs()).toMatch(/broker does not speak MQTT 5; using MQTT 3.1.1/);
      await waitFor("the stream to be under way through node A", () => consumer.events.length >= 1500 || undefined, 60_000, 20);
      const beforeKill = consumer.events.length;
      // Publishes node A holds unacknowledged at its death: sent again to node B, or lost.
      const inFlightAtKill = Number((await cdc.health()).body.inFlight ?? 0);
      await a!.kill();
      const committedAtKill = writer.committed();
      // A hundred changes more are committed while tera-cdc moves to the next node. Not more: on
      // a loaded machine the cluster re-elects the leaders node A held slowly, and a writer going on
      // meanwhile piles up tens of thousands of changes for the slowed cluster to store.
      await waitFor("the writer to commit a hundred changes more", () => writer.committed() >= committedAtKill + 100 || undefined, 60_000);
      await writer.stop();
      await cdc.waitForLog(/broker connection restored/, 60_000);

      const expected = await committedIds(db, workload);
      const total = totalOf(expected);
      expect(total).toBeGreaterThan(3000);
      const distinct = (...consumers: Consumer[]) => {
        const ids = new Set<string>();
        for (const one of consumers) for (const [model, set] of receivedIds(one).byModel) for (const id of set) ids.add(`${model}:${id}`);
        return ids.size;
      };
      await waitFor(`all ${total} committed changes at the subscribers of nodes B and C`, () => distinct(consumer, witness) >= total || undefined, 90_000, 200).catch(() => undefined);
      await waitFor(`all ${total} committed changes at the subscriber of node B`, () => distinct(consumer) >= total || undefined, 30_000, 200).catch(() => undefined);

      // Every committed row reached the cluster's subscribers, under exactly one model per table,
      // and nothing else: what tera-cdc had not seen acknowledged was sent again to the next node.
      const atB = receivedIds(consumer);
      const atC = receivedIds(witness);
      let missedAtB = 0;
      for (const [table, ids] of expected) {
        const model = [...atB.byModel.keys(), ...atC.byModel.keys()].find((m) => atB.byModel.get(m)?.has(ids[0]!) || atC.byModel.get(m)?.has(ids[0]!));
        expect(model, `${table}: its first row never arrived`).toBeDefined();
        const gotB = atB.byModel.get(model!) ?? new Set<number>();
        const gotC = atC.byModel.get(model!) ?? new Set<number>();
        const missing = ids.filter((id) => !gotB.has(id) && !gotC.has(id));
        if (missing.length > 0) console.log(`tera-cdc: ${JSON.stringify((await cdc.health()).body)}`);
        expect(missing.length, `${table}: ${missing.length} of ${ids.length} committed rows reached no subscriber (${ranges(missing)}; ${ids.indexOf(missing[0]!)} rows before the first missing one)`).toBe(0);
        expect(new Set([...gotB, ...gotC]).size, `${table}: rows arrived that were never committed`).toBe(ids.length);
        missedAtB += ids.filter((id) => !gotB.has(id)).length;
      }
      // Node B's subscriber gets them all in most runs; NATS 2.9 under heavy load has been seen to
      // leave a few rows of the failover undelivered to it that the cluster had acknowledged and
      // node C delivered (docs/scaling.md): the cluster's own delivery, not tera-cdc's publishing.
      if (missedAtB > 0) console.log(`node B's subscriber missed ${missedAtB} rows that node C's received`);
      // The slot was confirmed only up to what a broker acknowledged: once everything arrived it
      // moves on to the end; tera-cdc is healthy on the next node.
      expect((await cdc.health()).status).toBe(200);
      const confirmed = await confirmedPosition(db, "nc_slot");
      expect(confirmed).toBeGreaterThan(0n);
      console.log(`NATS cluster failover: ${beforeKill} events before node A was killed (${inFlightAtKill} publishes unacknowledged just before), ${total} committed changes all received (node B's subscriber missed ${missedAtB}), ${atB.duplicates} duplicates at node B (the unacknowledged window sent again)`);
      expect(await cdc.stop()).toBe(0);
    } catch (error) {
      console.log(`tera-cdc logs:\n${cdc.logs().slice(-3000)}\nNATS logs:\n${nats.logs()}`);
      throw error;
    } finally {
      await writer.stop();
      cdc.child.kill("SIGKILL");
      await Promise.all([consumer.close(), witness.close()]);
    }
  }, 240_000);
});
