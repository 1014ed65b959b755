import { describe, expect, it } from "vitest";
import type pg from "pg";
import { runCli, startCdc } from "../harness/cdc.js";
import { waitFor } from "../harness/ports.js";
import { exited } from "../harness/processes.js";
import { applyStream, prng } from "./support.js";
import { useClusterAndBroker } from "../harness/servers.js";

/**
 * The property that matters: a consumer that starts empty and applies the stream (snapshot rows
 * and live events in arrival order) ends with exactly the table's contents, while a writer
 * inserts, updates and deletes random rows throughout the snapshot.
 */
const [pgServer, broker] = useClusterAndBroker();

/** Random single- and multi-row transactions until stopped; returns how many it committed. */
function startWriter(client: pg.Client, table: string, seed: number, firstFreeId: number): { stop(): Promise<number> } {
  const random = prng(seed);
  let nextId = firstFreeId;
  let running = true;
  let transactions = 0;
  const done = (async () => {
    while (running) {
      const ops = 1 + Math.floor(random() * 3);
      await client.query("BEGIN");
      for (let i = 0; i < ops; i++) {
        const roll = random();
        const id = 1 + Math.floor(random() * (nextId - 1));
        if (roll < 0.4) await client.query(`UPDATE ${table} SET val = md5(random()::text), n = n + 1 WHERE id = $1`, [id]);
        else if (roll < 0.7) await client.query(`INSERT INTO ${table} (id, val, n) VALUES ($1, 'new', 0)`, [nextId++]);
        else await client.query(`DELETE FROM ${table} WHERE id = $1`, [id]);
      }
      await client.query("COMMIT");
      transactions++;
    }
  })();
  return {
    async stop() {
      running = false;
      await done;
      return transactions;
    },
  };
}

async function snapshotWhileWriting(seed: number, rows: number, withWriter: boolean, extraArgs: string[] = []): Promise<{ rate: number; writes: number }> {
  const table = `snap_c${seed}_${withWriter ? "w" : "q"}`;
  await pgServer.query(`CREATE TABLE ${table} (id int PRIMARY KEY, val text NOT NULL, n int NOT NULL)`);
  await pgServer.query(`INSERT INTO ${table} SELECT g, md5(g::text), 0 FROM generate_series(1, ${rows}) g`);
  const moduleName = `cdc-${table}`.replaceAll("_", "-");
  const cdc = await startCdc({
    databaseUrl: pgServer.url,
    mqttUrl: broker.url,
    args: ["--tables", table, "--slot", `slot_${table}`, "--publication", `pub_${table}`, "--module-name", moduleName, "--snapshot-chunk-size", "2048", "--rpc", ...extraArgs],
  });
  const state = await applyStream(broker.url, table, (o) => String(o.id));
  const writerClient = await pgServer.connect();
  try {
    const writer = withWriter ? startWriter(writerClient, table, seed, rows + 1) : null;
    const cli = runCli(["snapshot", table, "--mqtt-url", broker.url, "--module-name", moduleName, "--json"]);
    const code = await exited(cli.child, 280_000);
    const writes = (await writer?.stop()) ?? 0;
    expect(code, cli.output().stderr).toBe(0);
    const report = JSON.parse(cli.output().stdout.trim()) as { id: number; status: string; rows: number; rowsPerSecond: number };
    expect(report.status).toBe("done");
    // Everything the writer did reaches the consumer; then its copy equals the table.
    const expected = new Map((await pgServer.query(`SELECT id, val, n FROM ${table}`)).rows.map((r) => [String(r.id), r]));
    await waitFor(
      "the consumer's copy to equal the table",
      () => {
        if (state.rows.size !== expected.size) return false;
        for (const [key, row] of expected) {
          const got = state.rows.get(key);
          if (!got || got.val !== row.val || got.n !== row.n) return false;
        }
        return true;
      },
      90_000,
      200,
    ).catch(() => {
      const missing = [...expected.keys()].filter((k) => !state.rows.has(k)).slice(0, 5);
      const extra = [...state.rows.keys()].filter((k) => !expected.has(k)).slice(0, 5);
      const stale = [...expected].filter(([k, r]) => state.rows.has(k) && (state.rows.get(k)!.val !== r.val || state.rows.get(k)!.n !== r.n)).slice(0, 5);
      throw new Error(`seed ${seed}: consumer holds ${state.rows.size} rows, table ${expected.size}; missing ${missing}, extra ${extra}, stale ${JSON.stringify(stale)}`);
    });
    expect(state.markers.filter((m) => m.snapshot === String(report.id)).map((m) => m.kind)).toEqual(["start", "end"]);
    const end = state.markers.find((m) => m.kind === "end")!;
    expect(Number(end.properties["snapshot-rows"])).toBe(report.rows);
    expect(state.snapshotRows.get(String(report.id))).toBe(report.rows);
    if (!withWriter) expect(report.rows).toBe(rows);
    else expect(writes).toBeGreaterThan(50);
    console.log(`snapshot of ${rows} rows, seed ${seed}, ${withWriter ? `with a writer (${writes} transactions)` : "no writer"}: ${report.rows} rows published at ${report.rowsPerSecond} rows/s`);
    return { rate: report.rowsPerSecond, writes };
  } finally {
    await writerClient.end().catch(() => {});
    await state.close();
    await cdc.stop();
  }
}

describe("a snapshot interleaved with live changes", () => {
  it("seed 1: 100,000 rows under a concurrent writer end as the table's exact contents", async () => {
    await snapshotWhileWriting(1, 100_000, true);
  }, 300_000);

  it("seed 2: 20,000 rows under a concurrent writer", async () => {
    await snapshotWhileWriting(2, 20_000, true);
  }, 300_000);

  it("seed 3: 20,000 rows under a concurrent writer", async () => {
    await snapshotWhileWriting(3, 20_000, true);
  }, 300_000);

  it("seed 5: 20,000 rows under a concurrent writer, batched (--batch-events 64): snapshot rows share TeraEvents as live changes do", async () => {
    await snapshotWhileWriting(5, 20_000, true, ["--batch-events", "64"]);
  }, 300_000);

  it("100,000 rows with no writer: every row once, in order of the key", async () => {
    await snapshotWhileWriting(4, 100_000, false);
  }, 300_000);
});
