/**
 * Overlapped chunks (src/snapshot/chunk-reader.ts, run by manager.ts) against a real PostgreSQL, with the stream side
 * played by hand: each chunk window's delivery resolves when the test says so, in any order. The
 * next chunk is read while the previous one waits for its acknowledgement, never a third one; a
 * chunk is recorded in tera_cdc.snapshots only once it and every chunk before it are delivered,
 * so the recorded state (what a restart resumes from) never runs ahead of the broker.
 */
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { TupleValues } from "../../src/decode/pgoutput.js";
import { TypeCatalog } from "../../src/decode/types.js";
import type { ChunkWindow, WatermarkObserver } from "../../src/snapshot/observer.js";
import { SnapshotManager } from "../../src/snapshot/manager.js";
import { waitFor } from "../harness/ports.js";
import { type PostgresServer, startPostgres } from "../harness/postgres.js";

/** A chunk window as the manager opened it, its delivery in the test's hands. */
interface HeldWindow {
  readonly chunk: ChunkWindow;
  rows: TupleValues[] | null;
  rowsBefore: number | undefined;
  deliver(): void;
}

/** Plays the stream: records the windows, resolves a delivery when told (the rows set as published). */
class HandDrivenObserver {
  readonly windows: HeldWindow[] = [];

  open(chunk: ChunkWindow): Promise<number> {
    return new Promise((resolve) => {
      const held: HeldWindow = { chunk, rows: null, rowsBefore: undefined, deliver: () => resolve(held.rows?.length ?? 0) };
      this.windows.push(held);
    });
  }

  setRows(window: string, rows: TupleValues[], _xids: unknown, rowsBefore?: number): void {
    const held = this.windows.find((w) => w.chunk.window === window)!;
    held.rows = rows;
    held.rowsBefore = rowsBefore;
  }

  abandon(): void {}
  streamRestarted(): void {}
}

let pgServer: PostgresServer;

beforeAll(async () => {
  pgServer = await startPostgres();
  await pgServer.query("CREATE TABLE overlap_t (id int PRIMARY KEY, v text NOT NULL)");
  await pgServer.query("INSERT INTO overlap_t SELECT g, 'row ' || g FROM generate_series(1, 10) g");
}, 120_000);

afterAll(async () => {
  await pgServer?.close();
});

describe("overlapped snapshot chunks", () => {
  it("read ahead by one chunk, recorded in order only once delivered, whatever order the deliveries come in", async () => {
    const observer = new HandDrivenObserver();
    const progress: { chunks: number; rows: number; status: string }[] = [];
    const manager = new SnapshotManager({
      databaseUrl: () => pgServer.url,
      slot: "overlap_slot",
      chunkSize: 3,
      statementTimeoutMs: 30_000,
      maxRunning: 1,
      observer: observer as unknown as WatermarkObserver,
      types: new TypeCatalog(),
      tableSettings: () => ({}),
      publishedTables: async () => [{ schema: "public", table: "overlap_t" }],
      onProgress: (report) => progress.push({ chunks: report.chunks, rows: report.rows, status: report.status }),
      logger: pino({ level: "silent" }),
    });
    try {
      const id = await manager.start("overlap_t", null, null);
      const recorded = async () => (await pgServer.query("SELECT chunks, rows::int AS rows, last_key FROM tera_cdc.snapshots WHERE id = $1", [id])).rows[0];

      // Chunk 1 waits for its acknowledgement; chunk 2 is read meanwhile, a third is not.
      await waitFor("chunks 1 and 2 read", () => observer.windows.length === 2 && observer.windows[1]!.rows !== null, 30_000);
      await new Promise((r) => setTimeout(r, 500));
      expect(observer.windows).toHaveLength(2);
      expect(observer.windows.map((w) => w.rows!.map((r) => r[0]))).toEqual([["1", "2", "3"], ["4", "5", "6"]]);
      expect(observer.windows[0]!.chunk.markersBefore).toEqual(["start"]);
      expect(observer.windows[1]!.chunk.markersBefore).toEqual([]);

      // Chunk 2 delivered first: nothing may be recorded before chunk 1 is.
      observer.windows[1]!.deliver();
      await new Promise((r) => setTimeout(r, 500));
      expect(await recorded()).toMatchObject({ chunks: 0, rows: 0 });

      observer.windows[0]!.deliver();
      await waitFor("chunks 1 and 2 recorded", async () => (await recorded()).chunks === 2, 30_000);
      expect(await recorded()).toMatchObject({ chunks: 2, rows: 6, last_key: ["6"] });
      expect(progress.filter((p) => p.status === "running").map((p) => p.chunks)).toEqual([0, 1, 2]);

      // Chunk 3 is read once chunk 1 is recorded, chunk 4 (the last, one row) once chunk 2 is; the
      // last chunk's high watermark waits for every chunk before it to be recorded (the end
      // marker's total), so its rows are handed over only after chunk 3 is delivered.
      await waitFor("chunk 4's window", () => observer.windows.length === 4, 30_000);
      await new Promise((r) => setTimeout(r, 500));
      expect(observer.windows[2]!.rows!.map((r) => r[0])).toEqual(["7", "8", "9"]);
      expect(observer.windows[3]!.rows).toBeNull();
      expect(await recorded()).toMatchObject({ chunks: 2, rows: 6 });
      observer.windows[2]!.deliver();
      await waitFor("chunk 4 read", () => observer.windows[3]!.rows !== null, 30_000);
      expect(await recorded()).toMatchObject({ chunks: 3, rows: 9, last_key: ["9"] });
      expect(observer.windows[3]!.rows!.map((r) => r[0])).toEqual(["10"]);
      expect(observer.windows[3]!.chunk.markersAfter).toEqual(["end"]);
      // The end marker's total counts every chunk before the last one.
      expect(observer.windows[3]!.rowsBefore).toBe(9);
      observer.windows[3]!.deliver();
      await waitFor("the snapshot done", async () => (await pgServer.query("SELECT status FROM tera_cdc.snapshots WHERE id = $1", [id])).rows[0].status === "done", 30_000);
      expect(await recorded()).toMatchObject({ chunks: 4, rows: 10, last_key: ["10"] });
      expect(observer.windows).toHaveLength(4);
    } finally {
      await manager.stop();
    }
  }, 120_000);
});
