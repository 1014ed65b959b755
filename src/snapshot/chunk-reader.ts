import { randomBytes } from "node:crypto";
import type pg from "pg";
import type { TupleValues } from "../decode/pgoutput.js";
import type { TypeCatalog } from "../decode/types.js";
import { planRelation, type RelationPlan, type TableSettings } from "../model/plan.js";
import type { Query } from "../source/database.js";
import { describeTable } from "../source/published-tables.js";
import { qualified } from "../source/table-ref.js";
import type { WatermarkObserver } from "./observer.js";
import { checkFilter, type SnapshotFilter } from "./filter.js";
import { chunkQuery, type MarkerKind, parseXidSnapshot, type SnapshotReport, WATERMARK_PREFIX, watermarkContent } from "./protocol.js";
import { recordChunk, reportOf, type SnapshotRow } from "./store.js";

/** What the chunk reader needs of the snapshot manager: the database, the stream's observer, the settings. */
export interface ChunkReaderOptions {
  /** Statements on the snapshot pool (watermarks, catalog reads, recording a chunk). */
  readonly query: Query;
  /** A connection of the snapshot pool, for a chunk's read-only transaction. */
  readonly connect: () => Promise<pg.PoolClient>;
  readonly chunkSize: number;
  readonly observer: WatermarkObserver;
  readonly types: TypeCatalog;
  readonly tableSettings: (schema: string, table: string) => TableSettings;
  /** Called after every chunk recorded (progress reports on MQTT). */
  readonly onProgress: (report: SnapshotReport) => void;
  /** True once the manager is stopping: no further chunk is started. */
  readonly stopping: () => boolean;
}

/** Where the next chunk starts: chunks read so far and the last key read (ahead of what is recorded). */
export interface ChunkCursor {
  readonly chunks: number;
  readonly lastKey: (string | null)[] | null;
}

/** What a chunk needs of its table, read from the catalog for every chunk (see tableOfChunk). */
interface ChunkTable {
  readonly described: Awaited<ReturnType<typeof describeTable>>;
  readonly plan: RelationPlan;
  readonly keyTypes: readonly { readonly name: string; readonly type: string }[];
}

/** Every value as the text the server sent (its type's output function), never parsed by pg. */
const RAW_TEXT_TYPES: pg.CustomTypesConfig = { getTypeParser: () => (text: string) => text };

/**
 * Reads a snapshot's chunks: each chunk's rows by primary key in a read-only repeatable-read
 * transaction, between a low and a high watermark written to the WAL, handed to the stream's
 * observer, and recorded in `tera_cdc.snapshots` once the broker has them. The snapshot's life
 * cycle (start, resume, retries, cancel, stop) is the manager's (manager.ts).
 */
export class ChunkReader {
  private windowCounter = 0;
  private readonly instance = randomBytes(3).toString("hex");

  constructor(private readonly options: ChunkReaderOptions) {}

  /**
   * Chunks from `row` on, overlapped: the next chunk is read and bracketed by its watermarks while
   * the broker acknowledges the previous one, so the stream never waits for a round trip to the
   * database. At most two chunks are on their way. A chunk is recorded as done (its last key and
   * rows in tera_cdc.snapshots) only once all its messages are acknowledged and the chunk before
   * it is recorded: the recorded state never runs ahead of what the broker has, in order.
   * Returns the finished row, or null when the snapshot was cancelled or ended meanwhile.
   */
  async chunks(row: SnapshotRow, onRecorded: () => void): Promise<SnapshotRow | null> {
    let cursor: ChunkCursor = { chunks: row.chunks, lastKey: row.lastKey };
    let recorded: Promise<SnapshotRow> = Promise.resolve(row);
    // The next chunk's table description is read while this chunk is taken (catalog reads on
    // another connection of the pool): still one description per chunk, off the critical path.
    let nextTable = this.tableOfChunk(row);
    try {
      for (;;) {
        if (this.options.stopping()) return null;
        const table = await nextTable;
        nextTable = this.tableOfChunk(row);
        nextTable.catch(() => {});
        const previous = recorded;
        const read = await this.chunk(row, cursor, { cancelled: false }, async () => (await previous).rows, table);
        recorded = (async () => {
          const published = await read.delivered;
          const before = await previous;
          const after = await recordChunk(this.options.query, before.id, read.lastKey, published, read.last);
          onRecorded();
          this.options.onProgress(reportOf(after));
          return after;
        })();
        recorded.catch(() => {});
        if (read.last) return await recorded;
        cursor = { chunks: cursor.chunks + 1, lastKey: read.lastKey ?? cursor.lastKey };
        // The chunk before the one in flight must be recorded before another is read; its
        // recorded status tells a cancel (or an end) apart from a running snapshot.
        if ((await previous).status !== "running") {
          await recorded;
          return null;
        }
      }
    } catch (error) {
      nextTable.catch(() => {});
      // Nothing may be recorded after this attempt gives up: the next one starts from the recorded state.
      await recorded.catch(() => {});
      throw error;
    }
  }

  /**
   * One chunk between watermarks, read after `cursor`; with `cancelled`, only the cancelled marker.
   * Resolves once the high watermark is written, with `delivered`: the rows published, once the
   * broker has them all. The end marker's total needs the rows of every chunk before (`rowsBefore`).
   */
  async chunk(
    row: SnapshotRow,
    cursor: ChunkCursor,
    how: { cancelled: boolean },
    rowsBefore: () => Promise<number>,
    table?: ChunkTable,
  ): Promise<{ delivered: Promise<number>; lastKey: (string | null)[] | null; last: boolean }> {
    const { described, plan, keyTypes } = table ?? (await this.tableOfChunk(row));
    // Checked again for every chunk: the stored filter may predate a change of the published
    // columns (settings, a restart), and nothing unchecked ever reaches the SQL.
    const filter = row.filter && !how.cancelled ? checkFilter(row.filter, plan.columns.map((c) => c.name)) : null;
    const window = `${this.instance}-${++this.windowCounter}`;
    const markersBefore: MarkerKind[] = !how.cancelled && cursor.chunks === 0 ? ["start"] : [];
    const markersAfter: MarkerKind[] = how.cancelled ? ["cancelled"] : [];
    const chunk = { snapshot: row.id, window, plan, markersBefore, markersAfter, rowsBefore: 0 };
    const delivered = this.options.observer.open(chunk);
    delivered.catch(() => {});
    let rows: TupleValues[] = [];
    let last = how.cancelled;
    try {
      await this.emit(row.id, window, "low");
      if (!how.cancelled) {
        const read = await this.readChunk(row, cursor, filter, plan, keyTypes);
        rows = read.rows;
        last = rows.length < this.options.chunkSize;
        if (last) (chunk.markersAfter as MarkerKind[]).push("end");
        this.options.observer.setRows(window, rows, read.xids, last ? await rowsBefore() : undefined);
      } else {
        this.options.observer.setRows(window, [], null, await rowsBefore());
      }
      await this.emit(row.id, window, "high");
    } catch (error) {
      this.options.observer.abandon(window, error as Error);
      throw error;
    }
    const keyIndexes = described.primaryKey.map((name) => described.relation.columns.findIndex((c) => c.name === name));
    const lastRow = rows[rows.length - 1];
    const lastKey = lastRow ? keyIndexes.map((i) => lastRow[i] ?? null) : null;
    return { delivered, lastKey, last };
  }

  /** The table as the catalog describes it now, how it is published, and its key columns' types. */
  private async tableOfChunk(row: SnapshotRow): Promise<ChunkTable> {
    const ref = { schema: row.schema, table: row.table };
    const described = await describeTable(this.options.query, ref);
    const plan = planRelation(described.relation, described.primaryKey, this.options.tableSettings(ref.schema, ref.table), this.options.types);
    const types = await this.options.query(
      `SELECT a.attname AS name, format_type(a.atttypid, a.atttypmod) AS type
         FROM pg_attribute a WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped`,
      [plan.relation.relationOid],
    );
    const typeOf = new Map(types.rows.map((r) => [r.name as string, r.type as string]));
    return { described, plan, keyTypes: described.primaryKey.map((name) => ({ name, type: typeOf.get(name)! })) };
  }

  private async readChunk(row: SnapshotRow, cursor: ChunkCursor, filter: SnapshotFilter | null, plan: RelationPlan, key: ChunkTable["keyTypes"]): Promise<{ rows: TupleValues[]; xids: ReturnType<typeof parseXidSnapshot> }> {
    const sql = chunkQuery({
      table: qualified(row),
      columns: plan.relation.columns.map((c) => c.name),
      key,
      filter,
      after: cursor.lastKey,
      limit: this.options.chunkSize,
    });
    const client = await this.options.connect();
    let snapshot: pg.QueryResult;
    let result: pg.QueryResult;
    try {
      // One snapshot for both statements: the xids it saw decide which earlier changes it holds.
      // Two statements in one round trip: node-postgres answers a multi-statement text query with one result each.
      [, snapshot] = (await client.query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SELECT pg_current_snapshot()::text AS snapshot")) as unknown as [pg.QueryResult, pg.QueryResult];
      result = await client.query({ text: sql.text, values: sql.values, rowMode: "array", types: RAW_TEXT_TYPES });
    } catch (error) {
      await client.query("ROLLBACK").catch(() => {});
      client.release();
      throw error;
    }
    // The rows are read: the read-only transaction ends while the high watermark is written, not
    // before it (one round trip less per chunk). A connection whose COMMIT fails is discarded.
    client.query("COMMIT").then(
      () => client.release(),
      (error: Error) => client.release(error),
    );
    return { rows: result.rows as TupleValues[], xids: parseXidSnapshot(snapshot.rows[0].snapshot) };
  }

  private async emit(id: number, window: string, mark: "low" | "high"): Promise<void> {
    // A non-transactional message is not flushed by itself (PostgreSQL 15 has no flush argument),
    // and the walsender sends only flushed WAL: taking a transaction id makes the statement's
    // commit flush the WAL, so the watermark reaches the stream now, not at the next WAL writer round.
    await this.options.query("SELECT pg_logical_emit_message(false, $1, $2), pg_current_xact_id()", [WATERMARK_PREFIX, watermarkContent({ snapshot: id, window, mark })]);
  }
}
