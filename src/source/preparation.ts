/**
 * What a database needs before `tera-cdc run` can stream, as statements: the safe fixes `setup`
 * and `check --apply` run, and the whole least-privilege preparation `setup --print-sql` prints.
 */
import { ConfigError } from "../errors.js";
import type { Query } from "./database.js";
import { quoteIdent, quoteLiteral } from "./replication.js";
import { publicationTables } from "./published-tables.js";
import { qualified, type TableRef } from "./table-ref.js";

const ALL_OPERATIONS = "insert, update, delete, truncate";

export interface FixOptions {
  readonly publication: string;
  readonly slot: string;
  readonly tables?: readonly TableRef[];
  readonly replicaIdentityFull: boolean;
  readonly createSlot: boolean;
}

/**
 * The statements that bring the database to what `tera-cdc run` needs, limited to those safe to
 * automate: the publication (created, extended, publishing every operation), REPLICA IDENTITY
 * FULL when asked, the slot when asked (a slot retains WAL from then on). Server settings
 * (wal_level, slots, senders) and role attributes need a superuser's decision and a restart, so
 * they are left to `check`'s fix lines.
 */
export async function plannedFixes(query: Query, options: FixOptions): Promise<string[]> {
  const statements: string[] = [];
  const existing = await publicationTables(query, options.publication);
  const tables = options.tables && options.tables.length > 0 ? options.tables : existing;
  if (!tables) {
    throw new ConfigError(`publication "${options.publication}" does not exist and no tables are given: give --tables t1,t2 to create it`);
  }
  if (options.replicaIdentityFull) {
    for (const ref of tables) {
      const row = (
        await query(
          "SELECT c.relreplident AS identity FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relname = $2",
          [ref.schema, ref.table],
        )
      ).rows[0];
      if (row && row.identity !== "f") statements.push(`ALTER TABLE ${qualified(ref)} REPLICA IDENTITY FULL`);
    }
  }
  const publication = quoteIdent(options.publication);
  if (!existing) {
    statements.push(`CREATE PUBLICATION ${publication} FOR TABLE ${tables.map(qualified).join(", ")}`);
  } else {
    const missing = tables.filter((r) => !existing.some((e) => e.schema === r.schema && e.table === r.table));
    if (missing.length > 0) statements.push(`ALTER PUBLICATION ${publication} ADD TABLE ${missing.map(qualified).join(", ")}`);
    const ops = (await query("SELECT pubinsert AND pubupdate AND pubdelete AND pubtruncate AS all FROM pg_publication WHERE pubname = $1", [options.publication])).rows[0];
    if (ops && !ops.all) statements.push(`ALTER PUBLICATION ${publication} SET (publish = '${ALL_OPERATIONS}')`);
  }
  if (options.createSlot) {
    const slot = await query("SELECT 1 FROM pg_replication_slots WHERE slot_name = $1", [options.slot]);
    if (slot.rowCount === 0) statements.push(`SELECT pg_create_logical_replication_slot(${quoteLiteral(options.slot)}, 'pgoutput')`);
  }
  return statements;
}

/**
 * Everything a database needs before `tera-cdc run` can stream `tables` as the least-privilege
 * `role`, as statements a superuser runs (pure: no connection, any tables): the role (LOGIN,
 * REPLICATION; no password, set one afterwards), reading the tables, the schema for snapshot
 * state, REPLICA IDENTITY FULL when asked, the publication. Each statement can run again. wal_level
 * is not among them: it needs a restart, so it is a comment with the line to run.
 */
export function preparationSql(options: { tables: readonly TableRef[]; role: string; publication: string; replicaIdentityFull: boolean }): { comment: string; sql: string }[] {
  const role = quoteIdent(options.role);
  const list = options.tables.map(qualified).join(", ");
  const schemas = [...new Set(options.tables.map((t) => t.schema))];
  const steps: { comment: string; sql: string }[] = [
    {
      comment: `the role tera-cdc connects as: LOGIN and REPLICATION, no superuser (then give it a password: ALTER ROLE ${role} PASSWORD '...';)`,
      sql: `DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = ${quoteLiteral(options.role)}) THEN CREATE ROLE ${role} WITH LOGIN REPLICATION; END IF; END $$`,
    },
    { comment: "", sql: `ALTER ROLE ${role} WITH LOGIN REPLICATION` },
    { comment: "reading the tables: the catalog at start, snapshots", sql: `GRANT USAGE ON SCHEMA ${schemas.map(quoteIdent).join(", ")} TO ${role}` },
    { comment: "", sql: `GRANT SELECT ON ${list} TO ${role}` },
    { comment: "snapshot state (tera_cdc.snapshots), in a schema of its own", sql: `CREATE SCHEMA IF NOT EXISTS tera_cdc AUTHORIZATION ${role}` },
    // The schema may exist already (another role's tera-cdc, an earlier run as a superuser).
    { comment: "", sql: `GRANT USAGE, CREATE ON SCHEMA tera_cdc TO ${role}` },
    { comment: "", sql: `GRANT SELECT, INSERT, UPDATE ON ALL TABLES IN SCHEMA tera_cdc TO ${role}` },
    { comment: "", sql: `GRANT USAGE ON ALL SEQUENCES IN SCHEMA tera_cdc TO ${role}` },
  ];
  if (options.replicaIdentityFull) {
    options.tables.forEach((t, i) =>
      steps.push({ comment: i === 0 ? "deletes carry every column, updates every unchanged large value" : "", sql: `ALTER TABLE ${qualified(t)} REPLICA IDENTITY FULL` }),
    );
  }
  steps.push({
    comment: "the publication: what is streamed",
    sql: `DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = ${quoteLiteral(options.publication)}) THEN CREATE PUBLICATION ${quoteIdent(options.publication)} FOR TABLE ${list}; END IF; END $$`,
  });
  return steps;
}

/** The preparation as a psql script, with the wal_level step and the restart it needs first. */
export function preparationScript(options: Parameters<typeof preparationSql>[0]): string {
  const lines = [
    `-- Prepares this database for tera-cdc run --tables ${options.tables.map((t) => `${t.schema}.${t.table}`).join(",")} as role ${options.role}.`,
    "-- Run it as a superuser: psql \"postgres://postgres@host/db\" -f this-file.sql",
    "--",
    "-- First, once per server: logical decoding. SHOW wal_level; if it is not logical, run",
    "--   ALTER SYSTEM SET wal_level = logical;",
    "-- then RESTART PostgreSQL (a reload is not enough), e.g. systemctl restart postgresql.",
    "",
  ];
  for (const step of preparationSql(options)) {
    if (step.comment) lines.push(`-- ${step.comment}`);
    lines.push(`${step.sql};`);
  }
  return `${lines.join("\n")}\n`;
}

/** Plans and (unless dry-run) applies the fixes, writing each statement to `out`. */
export async function applyFixes(query: Query, options: FixOptions, dryRun: boolean, out: (line: string) => void): Promise<number> {
  const statements = await plannedFixes(query, options);
  if (statements.length === 0) out("nothing to do: the publication already holds the tables");
  for (const sql of statements) {
    if (!dryRun) await query(sql);
    out(`${dryRun ? "would run" : "applied"}: ${sql};`);
  }
  return statements.length;
}
