import type { Query } from "../source/database.js";
import type { SnapshotReport, SnapshotStatus } from "./protocol.js";

/**
 * Snapshot state lives in the database (`tera_cdc.snapshots`), not in memory: a tera-cdc that
 * restarts mid-snapshot resumes after the last chunk the broker acknowledged.
 */
export const SNAPSHOT_TABLE = "tera_cdc.snapshots";

export const CREATE_SNAPSHOT_TABLE = `
CREATE SCHEMA IF NOT EXISTS tera_cdc;
CREATE TABLE IF NOT EXISTS tera_cdc.snapshots (
  id             bigserial PRIMARY KEY,
  slot           text        NOT NULL,
  model          text        NOT NULL,
  table_schema   text        NOT NULL,
  table_name     text        NOT NULL,
  where_sql      text,
  status         text        NOT NULL DEFAULT 'running',
  last_key       text[],
  chunks         integer     NOT NULL DEFAULT 0,
  rows           bigint      NOT NULL DEFAULT 0,
  estimated_rows bigint      NOT NULL DEFAULT 0,
  started_at     timestamptz NOT NULL DEFAULT now(),
  finished_at    timestamptz,
  error          text
)`;

export interface SnapshotRow {
  readonly id: number;
  readonly slot: string;
  readonly model: string;
  readonly schema: string;
  readonly table: string;
  readonly where: string | null;
  readonly status: SnapshotStatus;
  /** Key (text values) of the last row of the last completed chunk; null before the first. */
  readonly lastKey: (string | null)[] | null;
  readonly chunks: number;
  readonly rows: number;
  readonly estimatedRows: number;
  readonly startedAt: Date;
  readonly finishedAt: Date | null;
  readonly error: string | null;
}

const COLUMNS = `id::int AS id, slot, model, table_schema AS schema, table_name AS "table", where_sql AS "where", status,
  last_key AS "lastKey", chunks, rows::float8 AS rows, estimated_rows::float8 AS "estimatedRows",
  started_at AS "startedAt", finished_at AS "finishedAt", error`;

export async function ensureSnapshotTable(query: Query): Promise<void> {
  try {
    await query(CREATE_SNAPSHOT_TABLE);
  } catch (error) {
    throw new Error(
      `cannot create ${SNAPSHOT_TABLE} for snapshot state (${(error as Error).message.split("\n")[0]}): run the statements of CREATE_SNAPSHOT_TABLE (docs/snapshots.md) as an owner, or GRANT CREATE ON DATABASE to tera-cdc's role`,
    );
  }
}

export async function insertSnapshot(query: Query, s: { slot: string; model: string; schema: string; table: string; where: string | null; estimatedRows: number }): Promise<SnapshotRow> {
  const result = await query(
    `INSERT INTO tera_cdc.snapshots (slot, model, table_schema, table_name, where_sql, estimated_rows) VALUES ($1, $2, $3, $4, $5, $6) RETURNING ${COLUMNS}`,
    [s.slot, s.model, s.schema, s.table, s.where, Math.round(s.estimatedRows)],
  );
  return result.rows[0] as SnapshotRow;
}

export async function loadSnapshot(query: Query, id: number): Promise<SnapshotRow | null> {
  return ((await query(`SELECT ${COLUMNS} FROM tera_cdc.snapshots WHERE id = $1`, [id])).rows[0] as SnapshotRow | undefined) ?? null;
}

export async function runningSnapshots(query: Query, slot: string): Promise<SnapshotRow[]> {
  return (await query(`SELECT ${COLUMNS} FROM tera_cdc.snapshots WHERE slot = $1 AND status = 'running' ORDER BY id`, [slot])).rows as SnapshotRow[];
}

/** Records a completed chunk; a snapshot cancelled meanwhile stays cancelled. */
export async function recordChunk(query: Query, id: number, lastKey: (string | null)[] | null, rows: number, done: boolean): Promise<SnapshotRow> {
  const result = await query(
    `UPDATE tera_cdc.snapshots
        SET last_key = coalesce($2::text[], last_key), chunks = chunks + 1, rows = rows + $3,
            status = CASE WHEN status = 'running' AND $4 THEN 'done' ELSE status END,
            finished_at = CASE WHEN status = 'running' AND $4 THEN now() ELSE finished_at END
      WHERE id = $1 RETURNING ${COLUMNS}`,
    [id, lastKey, rows, done],
  );
  return result.rows[0] as SnapshotRow;
}

/** Moves a running snapshot to a final status; returns whether it was running. */
export async function finishSnapshot(query: Query, id: number, status: "cancelled" | "failed", error: string | null = null): Promise<boolean> {
  const result = await query(
    `UPDATE tera_cdc.snapshots SET status = $2, error = $3, finished_at = now() WHERE id = $1 AND status = 'running'`,
    [id, status, error],
  );
  return (result.rowCount ?? 0) > 0;
}

export function reportOf(row: SnapshotRow): SnapshotReport {
  return {
    id: row.id,
    model: row.model,
    table: `${row.schema}.${row.table}`,
    where: row.where,
    status: row.status,
    rows: row.rows,
    estimatedRows: row.estimatedRows,
    chunks: row.chunks,
    startedAt: row.startedAt.toISOString(),
    finishedAt: row.finishedAt ? row.finishedAt.toISOString() : null,
    error: row.error,
  };
}
