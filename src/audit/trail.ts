/**
 * The audit trail: an append-only PostgreSQL table with one row per change, unique on (lsn, seq) so
 * that replays (tera-cdc's after a restart, the broker's after a reconnect, the sink's own after a
 * crash) add nothing. Rows are appended in the order received, which is commit order, so `id`
 * follows (lsn, seq).
 */
import pg from "pg";
import type { Change } from "../client/index.js";
import { qualified, type TableRef } from "../source/table-ref.js";
import { quoteIdent, quoteLiteral } from "../source/replication.js";
import { parseLsn } from "../lsn.js";

/** Columns the sink writes; a table that exists must have them all. */
export const AUDIT_COLUMNS = ["id", "model", "op", "object", "commit_time", "lsn", "xid", "seq", "source_table", "received_at", "recorded_at"] as const;

/** DDL that creates the table if missing, with its unique key and a trigger refusing UPDATE and DELETE. Pure. */
export function auditTableDdl(ref: TableRef): string[] {
  const table = qualified(ref);
  const name = (suffix: string) => quoteIdent(`${ref.table}_${suffix}`.slice(0, 63));
  const guard = `${quoteIdent(ref.schema)}.${quoteIdent("tera_cdc_audit_append_only")}`;
  return [
    `CREATE SCHEMA IF NOT EXISTS ${quoteIdent(ref.schema)}`,
    `CREATE TABLE IF NOT EXISTS ${table} (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  model text NOT NULL,
  op text NOT NULL CHECK (op IN ('create', 'update', 'delete', 'truncate')),
  object jsonb NOT NULL,
  commit_time timestamptz NOT NULL,
  lsn pg_lsn NOT NULL,
  xid bigint NOT NULL,
  seq integer NOT NULL,
  source_table text NOT NULL,
  received_at timestamptz NOT NULL,
  recorded_at timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT ${name("lsn_seq_key")} UNIQUE (lsn, seq)
)`,
    `CREATE INDEX IF NOT EXISTS ${name("model_commit_time_idx")} ON ${table} (model, commit_time)`,
    `CREATE OR REPLACE FUNCTION ${guard}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'table %.% is an append-only audit trail: % is not allowed', TG_TABLE_SCHEMA, TG_TABLE_NAME, TG_OP;
END $$`,
    `CREATE OR REPLACE TRIGGER ${name("append_only")} BEFORE UPDATE OR DELETE ON ${table} FOR EACH STATEMENT EXECUTE FUNCTION ${guard}()`,
    `COMMENT ON TABLE ${table} IS ${quoteLiteral("tera-cdc audit trail: one row per committed change, unique on (lsn, seq), append-only")}`,
  ];
}

/** One INSERT for a batch; rows keep the batch's order, repeats of (lsn, seq) are skipped. Pure. */
export function auditInsertSql(ref: TableRef): string {
  return `INSERT INTO ${qualified(ref)} (model, op, object, commit_time, lsn, xid, seq, source_table, received_at)
SELECT model, op, object, commit_time, lsn, xid, seq, source_table, received_at
FROM unnest($1::text[], $2::text[], $3::jsonb[], $4::timestamptz[], $5::pg_lsn[], $6::bigint[], $7::integer[], $8::text[], $9::timestamptz[])
  WITH ORDINALITY AS batch(model, op, object, commit_time, lsn, xid, seq, source_table, received_at, position)
ORDER BY position
ON CONFLICT (lsn, seq) DO NOTHING
RETURNING lsn::text, seq`;
}

/**
 * Of the given changes (whose (lsn, seq) is already in the table), the 1-based positions of those
 * whose stored row says something else: a position claimed twice with different content. Pure.
 */
export function auditConflictSql(ref: TableRef): string {
  return `SELECT b.position::int AS position
FROM unnest($1::pg_lsn[], $2::integer[], $3::text[], $4::text[], $5::jsonb[], $6::timestamptz[], $7::text[])
  WITH ORDINALITY AS b(lsn, seq, model, op, object, commit_time, source_table, position)
JOIN ${qualified(ref)} AS t ON t.lsn = b.lsn AND t.seq = b.seq
WHERE (t.model, t.op, t.object, t.commit_time, t.source_table) IS DISTINCT FROM (b.model, b.op, b.object, b.commit_time, b.source_table)`;
}

/**
 * Whether a failed INSERT failed because of what a row holds (a value PostgreSQL cannot take: bad
 * time, bad JSON, a check) rather than because the database is unreachable or busy. Such a row
 * will never be stored, however often it is retried. SQLSTATE classes 22 (data exception),
 * 23 (integrity constraint violation) and 54 (program limit exceeded).
 */
export function isRowProblem(error: unknown): boolean {
  const code = (error as { code?: unknown }).code;
  return typeof code === "string" && /^(22|23|54)/.test(code);
}

/** What one append did: rows added, and the changes whose position was held with other content. */
export interface AppendOutcome {
  readonly appended: number;
  readonly repeats: number;
  readonly conflicts: readonly Change[];
}

/** The INSERT's parameters, one array per column. Pure. */
export function auditInsertParams(changes: readonly Change[]): unknown[][] {
  return [
    changes.map((c) => c.model),
    changes.map((c) => c.op),
    // The JSON text as published, so big numbers keep every digit.
    changes.map((c) => c.objectJson),
    changes.map((c) => c.commitTime),
    changes.map((c) => c.lsn),
    changes.map((c) => c.xid),
    changes.map((c) => c.seq),
    changes.map((c) => c.table),
    changes.map((c) => c.receivedAt.toISOString()),
  ];
}

export class AuditTrail {
  private readonly insertSql: string;
  private readonly conflictSql: string;

  private constructor(
    private readonly pool: pg.Pool,
    readonly table: TableRef,
  ) {
    this.insertSql = auditInsertSql(table);
    this.conflictSql = auditConflictSql(table);
  }

  /** Connects and creates the table if missing; refuses a table of another shape. */
  static async open(databaseUrl: string, table: TableRef): Promise<AuditTrail> {
    const pool = new pg.Pool({ connectionString: databaseUrl, max: 2, application_name: "tera-cdc audit" });
    // An idle connection that breaks (server restart) must not crash the process; the next query reconnects.
    pool.on("error", () => {});
    try {
      const client = await pool.connect();
      try {
        await client.query("BEGIN");
        // Two sinks starting at once would both try CREATE TABLE.
        await client.query("SELECT pg_advisory_xact_lock(hashtext('tera-cdc audit ddl'))");
        // A table of that name made for something else must not be mistaken for (or changed into) the trail.
        const { rows } = await client.query<{ column_name: string }>(
          "SELECT column_name FROM information_schema.columns WHERE table_schema = $1 AND table_name = $2",
          [table.schema, table.table],
        );
        const present = new Set(rows.map((r) => r.column_name));
        const missing = AUDIT_COLUMNS.filter((c) => !present.has(c));
        if (rows.length > 0 && missing.length > 0) {
          throw new Error(`table ${table.schema}.${table.table} exists but has no column ${missing.join(", ")}: give another --table, or drop it so the sink creates it`);
        }
        for (const statement of auditTableDdl(table)) await client.query(statement);
        await client.query("COMMIT");
      } catch (error) {
        await client.query("ROLLBACK").catch(() => {});
        throw error;
      } finally {
        client.release();
      }
      return new AuditTrail(pool, table);
    } catch (error) {
      await pool.end().catch(() => {});
      throw new Error(`audit table ${table.schema}.${table.table}: ${(error as Error).message.split("\n")[0]}`);
    }
  }

  /**
   * Appends the changes in one statement. A change whose (lsn, seq) is already held is not added:
   * a repeat when the stored row says the same, a conflict (returned, for an alert) when not.
   */
  async append(changes: readonly Change[]): Promise<AppendOutcome> {
    if (changes.length === 0) return { appended: 0, repeats: 0, conflicts: [] };
    const result = await this.pool.query<{ lsn: string; seq: number }>(this.insertSql, auditInsertParams(changes));
    const added = new Set(result.rows.map((r) => `${parseLsn(r.lsn)}:${r.seq}`));
    const held = changes.filter((c) => !added.has(`${parseLsn(c.lsn)}:${c.seq}`));
    if (held.length === 0) return { appended: result.rows.length, repeats: 0, conflicts: [] };
    const differing = await this.pool.query<{ position: number }>(this.conflictSql, [
      held.map((c) => c.lsn),
      held.map((c) => c.seq),
      held.map((c) => c.model),
      held.map((c) => c.op),
      held.map((c) => c.objectJson),
      held.map((c) => c.commitTime),
      held.map((c) => c.table),
    ]);
    const conflicts = differing.rows.map((r) => held[r.position - 1]!);
    return { appended: result.rows.length, repeats: held.length - conflicts.length, conflicts };
  }

  async close(): Promise<void> {
    await this.pool.end();
  }
}
