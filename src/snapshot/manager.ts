import { randomBytes } from "node:crypto";
import pg from "pg";
import { SQLSTATE } from "../errors.js";
import type { TupleValues } from "../decode/pgoutput.js";
import type { TypeCatalog } from "../decode/types.js";
import { planRelation, type RelationPlan, type TableSettings } from "../model/plan.js";
import { failureTag, type PublicFailure, publicFailure } from "../ops/failure.js";
import type { Logger } from "../ops/log.js";
import { REPLICATION_SESSION_OPTIONS } from "../source/replication.js";
import { describeTable, type TableRef } from "../source/setup.js";
import type { WatermarkObserver } from "./observer.js";
import { checkFilter, FilterError, filterSql, parseFilterJson, type SnapshotFilter } from "./filter.js";
import {
  chunkQuery,
  type MarkerKind,
  parseXidSnapshot,
  quoteIdent,
  type SnapshotReport,
  WATERMARK_PREFIX,
  watermarkContent,
} from "./protocol.js";
import { ensureSnapshotTable, finishSnapshot, insertSnapshot, loadSnapshot, recordChunk, reportOf, runningSnapshots, type SnapshotRow } from "./store.js";

export interface SnapshotManagerOptions {
  /** The database host streamed from now: after a failover, the new primary's URL. */
  readonly databaseUrl: () => string;
  readonly slot: string;
  readonly chunkSize: number;
  /** Longest a statement of a snapshot may run (a chunk's SELECT included), in ms. */
  readonly statementTimeoutMs: number;
  /** Snapshots running at once at most; a request beyond is refused. */
  readonly maxRunning: number;
  readonly observer: WatermarkObserver;
  readonly types: TypeCatalog;
  readonly tableSettings: (schema: string, table: string) => TableSettings;
  /** The published tables now (model name → table is worked out from them). */
  readonly publishedTables: () => Promise<readonly TableRef[]>;
  /** Called after every chunk and at the end (progress reports on MQTT). */
  readonly onProgress: (report: SnapshotReport) => void;
  readonly logger: Logger;
}

/** A request the caller got wrong (unknown model, bad filter): the message says what to fix. */
export class SnapshotRequestError extends Error {
  override readonly name = "SnapshotRequestError";
}

/** A snapshot as its caller may see it, with the reply topic of the request that started it. */
export interface OwnedReport {
  readonly report: SnapshotReport;
  readonly caller: string | null;
}

/** What a caller is told of a failed snapshot: our own refusals say what to fix; anything else only a code and a reference. */
function reportedFailure(error: unknown): { failure: PublicFailure; reported: string } {
  const failure = publicFailure(error);
  if (error instanceof SnapshotRequestError || error instanceof FilterError) return { failure, reported: error.message };
  const what = failure.code === SQLSTATE.queryCanceled ? "a statement ran longer than the snapshot statement timeout" : failure.code === "internal" ? "internal error" : "database error";
  return { failure, reported: `${what} ${failureTag(failure)}` };
}

/** Errors of checking a filter against the table that are the caller's to fix (SQLSTATE → advice). */
function filterProblem(error: unknown): string | null {
  const code = (error as { code?: unknown })?.code;
  if (typeof code !== "string") return null;
  if (code.startsWith("22")) return `a value of the filter does not fit its column's type (${code}): compare numbers with numeric columns, text with text columns`;
  if (code === SQLSTATE.undefinedFunction || code === SQLSTATE.datatypeMismatch || code === SQLSTATE.ambiguousFunction) return `an operator of the filter does not apply to its column's type (${code})`;
  return null;
}

/** Where the next chunk starts: chunks read so far and the last key read (ahead of what is recorded). */
interface ChunkCursor {
  readonly chunks: number;
  readonly lastKey: (string | null)[] | null;
}

/** What a chunk needs of its table, read from the catalog for every chunk (see tableOfChunk). */
interface ChunkTable {
  readonly described: Awaited<ReturnType<typeof describeTable>>;
  readonly plan: RelationPlan;
  readonly keyTypes: readonly { readonly name: string; readonly type: string }[];
}

/** How many times a chunk is taken again after the stream restarted under it before the snapshot fails. */
const CHUNK_ATTEMPTS = 20;

/** Every value as the text the server sent (its type's output function), never parsed by pg. */
const RAW_TEXT_TYPES: pg.CustomTypesConfig = { getTypeParser: () => (text: string) => text };

/**
 * Runs snapshots chunk by chunk: low watermark, SELECT of the next chunk by primary key
 * (read-only, repeatable read, no lock), high watermark; the next chunk is read while the broker
 * acknowledges this one, and a chunk is recorded as done in `tera_cdc.snapshots` once the broker
 * has all its events and the chunk before it is recorded.
 */
export class SnapshotManager {
  private pool: pg.Pool | null = null;
  /** The URL the pool connects to: a failover to another host of --database-url replaces the pool. */
  private poolUrl = "";
  private readonly running = new Map<number, Promise<void>>();
  private stopping = false;
  private windowCounter = 0;
  private readonly instance = randomBytes(3).toString("hex");

  constructor(private readonly options: SnapshotManagerOptions) {}

  /**
   * Creates the state table and resumes the snapshots this slot left running. A raw SQL filter
   * left by a version before structured filters is never run again: that snapshot fails.
   */
  async resume(): Promise<number> {
    await ensureSnapshotTable(this.query);
    const rows = await runningSnapshots(this.query, this.options.slot);
    for (const row of rows) {
      if (this.running.has(row.id)) continue;
      if (row.legacyWhere) {
        this.options.logger.warn({ snapshot: row.id, model: row.model }, "not resuming a snapshot whose filter is raw SQL from an older version: it is marked failed; request it again with a structured filter");
        await finishSnapshot(this.query, row.id, "failed", "its filter was raw SQL from an older tera-cdc: not run again; request the snapshot again");
        continue;
      }
      this.options.logger.info({ snapshot: row.id, model: row.model, chunks: row.chunks, rows: row.rows }, "resuming snapshot after the last completed chunk");
      this.launch(row);
    }
    return rows.length;
  }

  /**
   * Starts a snapshot of a published model; returns its id. `filterJson` is the caller's filter
   * as sent (JSON conditions, checked here); `caller` the reply topic that may follow it.
   */
  async start(model: string, filterJson: string | null, caller: string | null): Promise<number> {
    if (this.stopping) throw new Error("tera-cdc is stopping");
    if (this.running.size >= this.options.maxRunning) {
      throw new SnapshotRequestError(`${this.running.size} snapshots are running, the most at once (setting snapshot-max-running): ask again when one has ended`);
    }
    const { ref, plan } = await this.tableOfModel(model);
    let filter: SnapshotFilter | null = null;
    if (filterJson !== null) {
      try {
        filter = parseFilterJson(filterJson, plan.columns.map((c) => c.name));
      } catch (error) {
        throw new SnapshotRequestError((error as Error).message);
      }
    }
    if (plan.primaryKey.length === 0) {
      throw new SnapshotRequestError(`table ${ref.schema}.${ref.table} (model ${model}) has no primary key: snapshots page through a table by its primary key`);
    }
    let estimatedRows: number;
    const compiled = filter ? filterSql(filter, 1) : null;
    try {
      const explained = await this.query(`EXPLAIN (FORMAT JSON) SELECT 1 FROM ${quoteIdent(ref.schema)}.${quoteIdent(ref.table)}${compiled ? ` WHERE ${compiled.sql}` : ""}`, compiled?.values);
      estimatedRows = Number(explained.rows[0]["QUERY PLAN"][0].Plan["Plan Rows"]);
    } catch (error) {
      const problem = filterProblem(error);
      if (problem) throw new SnapshotRequestError(problem);
      throw error;
    }
    await ensureSnapshotTable(this.query);
    const row = await insertSnapshot(this.query, { slot: this.options.slot, model, schema: ref.schema, table: ref.table, filter, caller, estimatedRows });
    this.options.logger.info({ snapshot: row.id, model, table: `${ref.schema}.${ref.table}`, filter: reportOf(row).where, caller, estimatedRows }, "snapshot started");
    this.options.onProgress(reportOf(row));
    this.launch(row);
    return row.id;
  }

  async status(id: number): Promise<OwnedReport | null> {
    await ensureSnapshotTable(this.query);
    const row = await loadSnapshot(this.query, id);
    return row ? { report: reportOf(row), caller: row.caller } : null;
  }

  /** Snapshots of this slot still running. */
  async inProgress(): Promise<OwnedReport[]> {
    await ensureSnapshotTable(this.query);
    return (await runningSnapshots(this.query, this.options.slot)).map((row) => ({ report: reportOf(row), caller: row.caller }));
  }

  /** Cancels a running snapshot: it stops after the chunk in progress, with a `cancelled` marker. */
  async cancel(id: number): Promise<boolean> {
    await ensureSnapshotTable(this.query);
    return finishSnapshot(this.query, id, "cancelled");
  }

  /** Models that can be snapshotted now. */
  async models(): Promise<string[]> {
    const out: string[] = [];
    for (const ref of await this.options.publishedTables()) out.push((await this.planOf(ref)).model);
    return out;
  }

  /** Stops starting chunks; snapshots resume at the next start. */
  async stop(): Promise<void> {
    this.stopping = true;
    this.options.observer.streamRestarted();
    await Promise.race([Promise.allSettled(this.running.values()), new Promise((r) => setTimeout(r, 5000))]);
    await this.pool?.end().catch(() => {});
    this.pool = null;
  }

  private launch(row: SnapshotRow): void {
    const work = this.run(row).catch(async (error: Error) => {
      if (this.stopping) return;
      const { failure, reported } = reportedFailure(error);
      this.options.logger.error({ snapshot: row.id, model: row.model, code: failure.code, reference: failure.reference }, `snapshot failed: ${failure.logged}`);
      await finishSnapshot(this.query, row.id, "failed", reported).catch(() => {});
      const failed = await loadSnapshot(this.query, row.id).catch(() => null);
      if (failed) this.options.onProgress(reportOf(failed));
    });
    this.running.set(row.id, work);
    void work.finally(() => this.running.delete(row.id));
  }

  /**
   * Takes the snapshot from its recorded state; after a stream restart under a chunk, again from
   * the recorded state (at most CHUNK_ATTEMPTS times in a row).
   */
  private async run(initial: SnapshotRow): Promise<void> {
    let attempts = 0;
    const started = Date.now();
    while (!this.stopping) {
      const row = await loadSnapshot(this.query, initial.id);
      if (!row) return;
      if (row.status === "cancelled") {
        await (await this.chunk(row, row, { cancelled: true }, async () => row.rows)).delivered;
        this.options.logger.info({ snapshot: row.id, rows: row.rows }, "snapshot cancelled");
        this.options.onProgress(reportOf(row));
        return;
      }
      if (row.status !== "running") return;
      try {
        const done = await this.chunks(row, () => (attempts = 0));
        if (done) {
          const seconds = (Date.now() - started) / 1000;
          this.options.logger.info({ snapshot: done.id, model: done.model, rows: done.rows, chunks: done.chunks, seconds, rowsPerSecond: Math.round(done.rows / Math.max(seconds, 0.001)) }, "snapshot done");
          return;
        }
      } catch (error) {
        if (this.stopping) return;
        if (!/stream restarted|without its low watermark/.test((error as Error).message) || ++attempts > CHUNK_ATTEMPTS) throw error;
        this.options.logger.warn({ snapshot: initial.id }, `taking the chunk again: ${(error as Error).message}`);
        await new Promise((r) => setTimeout(r, 500));
      }
    }
  }

  /**
   * Chunks from `row` on, overlapped: the next chunk is read and bracketed by its watermarks while
   * the broker acknowledges the previous one, so the stream never waits for a round trip to the
   * database. At most two chunks are on their way. A chunk is recorded as done (its last key and
   * rows in tera_cdc.snapshots) only once all its messages are acknowledged and the chunk before
   * it is recorded: the recorded state never runs ahead of what the broker has, in order.
   * Returns the finished row, or null when the snapshot was cancelled or ended meanwhile.
   */
  private async chunks(row: SnapshotRow, onRecorded: () => void): Promise<SnapshotRow | null> {
    let cursor: ChunkCursor = { chunks: row.chunks, lastKey: row.lastKey };
    let recorded: Promise<SnapshotRow> = Promise.resolve(row);
    // The next chunk's table description is read while this chunk is taken (catalog reads on
    // another connection of the pool): still one description per chunk, off the critical path.
    let nextTable = this.tableOfChunk(row);
    try {
      for (;;) {
        if (this.stopping) return null;
        const table = await nextTable;
        nextTable = this.tableOfChunk(row);
        nextTable.catch(() => {});
        const previous = recorded;
        const read = await this.chunk(row, cursor, { cancelled: false }, async () => (await previous).rows, table);
        recorded = (async () => {
          const published = await read.delivered;
          const before = await previous;
          const after = await recordChunk(this.query, before.id, read.lastKey, published, read.last);
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
  private async chunk(
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
    const described = await describeTable(this.query, ref);
    const plan = planRelation(described.relation, described.primaryKey, this.options.tableSettings(ref.schema, ref.table), this.options.types);
    const types = await this.query(
      `SELECT a.attname AS name, format_type(a.atttypid, a.atttypmod) AS type
         FROM pg_attribute a WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped`,
      [plan.relation.relationOid],
    );
    const typeOf = new Map(types.rows.map((r) => [r.name as string, r.type as string]));
    return { described, plan, keyTypes: described.primaryKey.map((name) => ({ name, type: typeOf.get(name)! })) };
  }

  private async readChunk(row: SnapshotRow, cursor: ChunkCursor, filter: SnapshotFilter | null, plan: RelationPlan, key: ChunkTable["keyTypes"]): Promise<{ rows: TupleValues[]; xids: ReturnType<typeof parseXidSnapshot> }> {
    const sql = chunkQuery({
      table: `${quoteIdent(row.schema)}.${quoteIdent(row.table)}`,
      columns: plan.relation.columns.map((c) => c.name),
      key,
      filter,
      after: cursor.lastKey,
      limit: this.options.chunkSize,
    });
    const client = await this.connections().connect();
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
    await this.query("SELECT pg_logical_emit_message(false, $1, $2), pg_current_xact_id()", [WATERMARK_PREFIX, watermarkContent({ snapshot: id, window, mark })]);
  }

  private async tableOfModel(model: string): Promise<{ ref: TableRef; plan: RelationPlan }> {
    const refs = await this.options.publishedTables();
    const models: string[] = [];
    for (const ref of refs) {
      const plan = await this.planOf(ref);
      if (plan.model === model) return { ref, plan };
      models.push(plan.model);
    }
    throw new SnapshotRequestError(`unknown model "${model}": published models are ${models.join(", ") || "(none)"}`);
  }

  private async planOf(ref: TableRef): Promise<RelationPlan> {
    const table = await describeTable(this.query, ref);
    return planRelation(table.relation, table.primaryKey, this.options.tableSettings(ref.schema, ref.table), this.options.types);
  }

  /** Plain connections with the replication session's settings, so the values' text equals pgoutput's. */
  private connections(): pg.Pool {
    const url = this.options.databaseUrl();
    if (this.pool && this.poolUrl !== url) {
      // The stream followed another host (failover): the old one's connections are dead or read-only.
      void this.pool.end().catch(() => {});
      this.pool = null;
    }
    if (!this.pool) {
      this.poolUrl = url;
      this.pool = new pg.Pool({
        connectionString: url, application_name: "tera-cdc snapshot", options: REPLICATION_SESSION_OPTIONS,
        max: 4,
        // No statement of a snapshot holds a connection (and the xmin horizon) for long.
        statement_timeout: this.options.statementTimeoutMs,
        idle_in_transaction_session_timeout: this.options.statementTimeoutMs,
      } as pg.PoolConfig);
      this.pool.on("error", () => {});
    }
    return this.pool;
  }

  private readonly query = (sql: string, params?: unknown[]): Promise<pg.QueryResult> => this.connections().query(sql, params as unknown[]);
}
