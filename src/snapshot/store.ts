import type { Query } from "../source/database.js";
import { quoteIdent } from "../source/replication.js";
import { describeFilter, type SnapshotFilter } from "./filter.js";
import type { SnapshotReport, SnapshotStatus } from "./protocol.js";

/**
 * Snapshot state lives in the database (`tera_cdc.snapshots`), not in memory: a tera-cdc that
 * restarts mid-snapshot resumes after the last chunk the broker acknowledged.
 */
export const SNAPSHOT_TABLE = "tera_cdc.snapshots";

const CREATE_SCHEMA = "CREATE SCHEMA IF NOT EXISTS tera_cdc";

const CREATE_TABLE = `
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
  error          text,
  filter         jsonb,
  caller         text
)`;

/**
 * Issue 14: the filter as data (never SQL) and the reply topic of the request that started it,
 * added to a table an older version created. where_sql is then only read to refuse what an
 * older version left running.
 */
const ADD_COLUMNS = "ALTER TABLE tera_cdc.snapshots ADD COLUMN IF NOT EXISTS filter jsonb, ADD COLUMN IF NOT EXISTS caller text";

/** Both statements, as docs/snapshots.md shows them for an owner to run. */
export const CREATE_SNAPSHOT_TABLE = `${CREATE_SCHEMA};${CREATE_TABLE}`;

export interface SnapshotRow {
  readonly id: number;
  readonly slot: string;
  readonly model: string;
  readonly schema: string;
  readonly table: string;
  /** The checked filter (conditions); null: every row. */
  readonly filter: SnapshotFilter | null;
  /** Whether the row carries a raw SQL filter from a version before structured filters. */
  readonly legacyWhere: boolean;
  /** MQTT reply topic of the request that started it; null for `--snapshot initial`. */
  readonly caller: string | null;
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

const COLUMNS = `id::int AS id, slot, model, table_schema AS schema, table_name AS "table", filter, where_sql IS NOT NULL AS "legacyWhere", caller, status,
  last_key AS "lastKey", chunks, rows::float8 AS rows, estimated_rows::float8 AS "estimatedRows",
  started_at AS "startedAt", finished_at AS "finishedAt", error`;

/** Where the snapshot state stands: what exists and what the current role may do with it. */
interface SnapshotStateAccess {
  readonly me: string;
  readonly schemaExists: boolean;
  readonly tableExists: boolean;
  /** The table has the columns of structured filters (else an older version created it). */
  readonly tableCurrent: boolean;
  readonly createOnDatabase: boolean;
  readonly schemaUsage: boolean;
  readonly schemaCreate: boolean;
  readonly tableReadWrite: boolean;
  readonly sequenceUsage: boolean;
}

async function snapshotStateAccess(query: Query): Promise<SnapshotStateAccess> {
  const row = (
    // By catalog oids, not names: to_regclass() of a name in a schema without USAGE raises.
    await query(`SELECT current_user AS me,
        n.oid IS NOT NULL AS "schemaExists",
        t.oid IS NOT NULL AS "tableExists",
        EXISTS (SELECT 1 FROM pg_attribute c WHERE c.attrelid = t.oid AND c.attname = 'caller' AND NOT c.attisdropped) AS "tableCurrent",
        has_database_privilege(current_database(), 'CREATE') AS "createOnDatabase",
        n.oid IS NOT NULL AND has_schema_privilege(n.oid, 'USAGE') AS "schemaUsage",
        n.oid IS NOT NULL AND has_schema_privilege(n.oid, 'CREATE') AS "schemaCreate",
        t.oid IS NOT NULL AND has_table_privilege(t.oid, 'SELECT, INSERT, UPDATE') AS "tableReadWrite",
        q.oid IS NOT NULL AND has_sequence_privilege(q.oid, 'USAGE') AS "sequenceUsage"
      FROM (SELECT 1) one
      LEFT JOIN pg_namespace n ON n.nspname = 'tera_cdc'
      LEFT JOIN pg_class t ON t.relnamespace = n.oid AND t.relname = 'snapshots'
      LEFT JOIN pg_class q ON q.relnamespace = n.oid AND q.relname = 'snapshots_id_seq'`)
  ).rows[0] as SnapshotStateAccess;
  return row;
}

/**
 * Whether the current role can keep snapshot state, and if not the statements that let it
 * (for `check`). The least-privilege way is sql/prepare-database.sql's: a schema the role owns.
 */
export async function snapshotStatePrivileges(query: Query): Promise<{ ok: boolean; detail: string; fix?: string }> {
  const a = await snapshotStateAccess(query);
  const role = quoteIdent(a.me);
  if (!a.schemaExists) {
    if (a.createOnDatabase) return { ok: true, detail: `schema tera_cdc does not exist yet: ${a.me} creates it (CREATE on the database)` };
    return { ok: false, detail: `schema tera_cdc does not exist and ${a.me} may not create it`, fix: `CREATE SCHEMA tera_cdc AUTHORIZATION ${role};` };
  }
  const fixes: string[] = [];
  if (!a.schemaUsage || (!a.tableExists && !a.schemaCreate)) fixes.push(`GRANT USAGE${a.tableExists ? "" : ", CREATE"} ON SCHEMA tera_cdc TO ${role};`);
  if (a.tableExists && !a.tableReadWrite) fixes.push(`GRANT SELECT, INSERT, UPDATE ON tera_cdc.snapshots TO ${role};`);
  if (a.tableExists && !a.sequenceUsage) fixes.push(`GRANT USAGE ON SEQUENCE tera_cdc.snapshots_id_seq TO ${role};`);
  if (fixes.length === 0) return { ok: true, detail: a.tableExists ? "tera_cdc.snapshots is readable and writable" : `${a.me} may create tera_cdc.snapshots in schema tera_cdc` };
  return { ok: false, detail: `${a.me} cannot keep snapshot state in ${a.tableExists ? "tera_cdc.snapshots" : "schema tera_cdc"} (snapshots and RPC snapshot requests fail)`, fix: fixes.join(" ") };
}

/**
 * Creates what is missing, and only that: `CREATE SCHEMA IF NOT EXISTS` needs CREATE on the
 * database even when the schema exists, which the least-privilege role does not have.
 */
export async function ensureSnapshotTable(query: Query): Promise<void> {
  try {
    const a = await snapshotStateAccess(query);
    if (a.tableExists) {
      if (!a.tableCurrent) await query(ADD_COLUMNS);
      return;
    }
    if (!a.schemaExists) await query(CREATE_SCHEMA);
    await query(CREATE_TABLE);
  } catch (error) {
    throw new Error(
      `cannot create ${SNAPSHOT_TABLE} for snapshot state (${(error as Error).message.split("\n")[0]}): run CREATE SCHEMA tera_cdc AUTHORIZATION <tera-cdc's role>; as the database owner (sql/prepare-database.sql does), or see tera-cdc check`,
    );
  }
}

export async function insertSnapshot(
  query: Query,
  s: { slot: string; model: string; schema: string; table: string; filter: SnapshotFilter | null; caller: string | null; estimatedRows: number },
): Promise<SnapshotRow> {
  const result = await query(
    `INSERT INTO tera_cdc.snapshots (slot, model, table_schema, table_name, filter, caller, estimated_rows) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING ${COLUMNS}`,
    [s.slot, s.model, s.schema, s.table, s.filter ? JSON.stringify(s.filter) : null, s.caller, Math.round(s.estimatedRows)],
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
    where: row.filter ? describeFilter(row.filter) : null,
    status: row.status,
    rows: row.rows,
    estimatedRows: row.estimatedRows,
    chunks: row.chunks,
    startedAt: row.startedAt.toISOString(),
    finishedAt: row.finishedAt ? row.finishedAt.toISOString() : null,
    error: row.error,
  };
}
