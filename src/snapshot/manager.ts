import pg from "pg";
import { SQLSTATE } from "../errors.js";
import type { TypeCatalog } from "../decode/types.js";
import { planRelation, type RelationPlan, type TableSettings } from "../model/plan.js";
import { failureTag, type PublicFailure, publicFailure } from "../ops/failure.js";
import type { Logger } from "../ops/log.js";
import { REPLICATION_SESSION_OPTIONS } from "../source/replication.js";
import { describeTable } from "../source/published-tables.js";
import { qualified, type TableRef } from "../source/table-ref.js";
import type { WatermarkObserver } from "./observer.js";
import { ChunkReader } from "./chunk-reader.js";
import { FilterError, filterSql, parseFilterJson, type SnapshotFilter } from "./filter.js";
import type { SnapshotReport } from "./protocol.js";
import { ensureSnapshotTable, finishSnapshot, insertSnapshot, loadSnapshot, reportOf, runningSnapshots, type SnapshotRow } from "./store.js";

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

/** How many times a chunk is taken again after the stream restarted under it before the snapshot fails. */
const CHUNK_ATTEMPTS = 20;

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
  private readonly reader: ChunkReader;

  constructor(private readonly options: SnapshotManagerOptions) {
    this.reader = new ChunkReader({
      query: this.query,
      connect: () => this.connections().connect(),
      chunkSize: options.chunkSize,
      observer: options.observer,
      types: options.types,
      tableSettings: options.tableSettings,
      onProgress: options.onProgress,
      stopping: () => this.stopping,
    });
  }

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
      const explained = await this.query(`EXPLAIN (FORMAT JSON) SELECT 1 FROM ${qualified(ref)}${compiled ? ` WHERE ${compiled.sql}` : ""}`, compiled?.values);
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
        await (await this.reader.chunk(row, row, { cancelled: true }, async () => row.rows)).delivered;
        this.options.logger.info({ snapshot: row.id, rows: row.rows }, "snapshot cancelled");
        this.options.onProgress(reportOf(row));
        return;
      }
      if (row.status !== "running") return;
      try {
        const done = await this.reader.chunks(row, () => (attempts = 0));
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
