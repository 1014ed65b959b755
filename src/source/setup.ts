import { ConfigError, hasSqlState, SQLSTATE } from "../errors.js";
import type { Query } from "./database.js";
import type pg from "pg";
import type { RelationColumn, RelationMessage, ReplicaIdentity } from "../decode/pgoutput.js";
import { quoteIdent, quoteLiteral } from "./replication.js";
import { type Lsn, parseLsn } from "../lsn.js";

export interface TableRef {
  readonly schema: string;
  readonly table: string;
}

/** A prerequisite that is not met: the message names the problem and the fix, on one line (exit 2). */
export class PrerequisiteError extends ConfigError {
  override readonly name = "PrerequisiteError";
}

export function parseTableRef(text: string): TableRef {
  const parts = text.trim().split(".");
  if (parts.length === 1 && parts[0]) return { schema: "public", table: parts[0] };
  if (parts.length === 2 && parts[0] && parts[1]) return { schema: parts[0], table: parts[1] };
  throw new Error(`"${text}" is not a table name (use table or schema.table)`);
}

export function qualified(ref: TableRef): string {
  return `${quoteIdent(ref.schema)}.${quoteIdent(ref.table)}`;
}

/** A published table as the catalog describes it now, shaped like a Relation message. */
export interface PublishedTable {
  readonly relation: RelationMessage;
  readonly primaryKey: readonly string[];
  /** Columns whose values PostgreSQL may store out of line (TOAST). */
  readonly toastable: readonly string[];
}

export interface PrepareOptions {
  readonly slot: string;
  readonly publication: string;
  /** Tables to publish; when absent the publication must exist and its tables are used. */
  readonly tables?: readonly TableRef[];
  /**
   * Called with the slot as it is now (null: none) before it is used or created; throws to refuse
   * (src/source/origin.ts: never silently start over on a new slot).
   */
  readonly beforeSlot?: (slot: { database: string | null; confirmedLsn: Lsn | null } | null) => void | Promise<void>;
}

export interface PreparedDatabase {
  readonly tables: readonly PublishedTable[];
  readonly slotCreated: boolean;
  /** Statements run to create or extend the publication and the slot, for the log. */
  readonly applied: readonly string[];
}


/** The oldest PostgreSQL major version tera-cdc streams from. */
export const MINIMUM_SERVER_VERSION = 14;

/**
 * PostgreSQL 13's pgoutput has no `messages` option (logical decoding messages, the snapshot
 * watermarks): START_REPLICATION fails on every attempt. No catalog feature tells whether pgoutput
 * takes an option, so this one check reads the server's version number.
 */
export async function checkServerVersion(query: Query): Promise<number> {
  const row = (await query("SELECT current_setting('server_version_num')::int AS num, current_setting('server_version') AS text")).rows[0];
  const num = row.num as number;
  if (num < MINIMUM_SERVER_VERSION * 10_000) {
    throw new PrerequisiteError(
      `PostgreSQL ${String(row.text).split(" ")[0]} is not supported: tera-cdc needs PostgreSQL ${MINIMUM_SERVER_VERSION} or later (pgoutput's messages option); upgrade the server`,
    );
  }
  return num;
}

/**
 * Whether tera-cdc decodes on a hot standby. Logical decoding there needs PostgreSQL 16 (before,
 * creating or using the slot fails in recovery) and cannot write: snapshot watermarks
 * (pg_logical_emit_message) need the primary, so `--snapshot initial` is refused on a standby.
 */
export async function checkDecodingHost(query: Query, options: { snapshotInitial: boolean }): Promise<{ standby: boolean }> {
  const row = (await query("SELECT pg_is_in_recovery() AS standby, current_setting('server_version_num')::int AS num")).rows[0];
  if (!row.standby) return { standby: false };
  if (row.num < 160_000) {
    throw new PrerequisiteError(
      "--database-url reaches a standby, and logical decoding on a standby needs PostgreSQL 16 or later: connect to the primary (or list both hosts, postgres://u@a,b/db, to follow the read-write one)",
    );
  }
  if (options.snapshotInitial) {
    throw new PrerequisiteError(
      "--snapshot initial needs a write on the primary (its watermarks), and --database-url reaches a standby: start once against the primary for the snapshot, or leave out --snapshot initial",
    );
  }
  return { standby: true };
}

export async function checkWalLevel(query: Query): Promise<void> {
  const level = (await query("SHOW wal_level")).rows[0]?.wal_level as string;
  if (level !== "logical") {
    throw new PrerequisiteError(
      `wal_level is "${level}", logical replication needs "logical": run ALTER SYSTEM SET wal_level = logical; then restart PostgreSQL`,
    );
  }
}

export async function checkReplicationRole(query: Query): Promise<void> {
  const row = (
    await query("SELECT current_user AS name, rolreplication, rolsuper FROM pg_roles WHERE rolname = current_user")
  ).rows[0];
  if (row && !row.rolreplication && !row.rolsuper) {
    throw new PrerequisiteError(
      `role "${row.name}" lacks the REPLICATION attribute: run ALTER ROLE ${quoteIdent(row.name)} WITH REPLICATION; as a superuser`,
    );
  }
}

/** The tables a publication holds now. */
export async function publicationTables(query: Query, publication: string): Promise<TableRef[] | null> {
  const exists = await query("SELECT 1 FROM pg_publication WHERE pubname = $1", [publication]);
  if (exists.rowCount === 0) return null;
  const rows = await query(
    "SELECT schemaname AS schema, tablename AS table FROM pg_publication_tables WHERE pubname = $1 ORDER BY 1, 2",
    [publication],
  );
  return rows.rows as TableRef[];
}

export async function describeTable(query: Query, ref: TableRef): Promise<PublishedTable> {
  const found = await query(
    `SELECT c.oid::int AS oid, c.relreplident AS identity, c.relkind AS kind
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = $1 AND c.relname = $2`,
    [ref.schema, ref.table],
  );
  const table = found.rows[0];
  if (!table || !["r", "p"].includes(table.kind)) {
    throw new PrerequisiteError(
      `table ${ref.schema}.${ref.table} does not exist: check the --tables setting or create the table`,
    );
  }
  const readable = await query("SELECT has_table_privilege($1::oid, 'SELECT') AS ok, current_user AS me", [table.oid]);
  if (!readable.rows[0]?.ok) {
    throw new PrerequisiteError(
      `the role cannot read ${ref.schema}.${ref.table}: run GRANT SELECT ON ${qualified(ref)} TO ${quoteIdent(readable.rows[0]?.me ?? "current_user")};`,
    );
  }
  const columns = await query(
    `SELECT a.attname AS name, a.atttypid::int AS "typeOid", a.atttypmod AS "typeMod", a.attstorage AS storage,
            coalesce(a.attnum = ANY(i.indkey), false) AS "inKey", coalesce(a.attnum = ANY(p.indkey), false) AS "inPk"
       FROM pg_attribute a
       LEFT JOIN pg_index p ON p.indrelid = a.attrelid AND p.indisprimary
       LEFT JOIN pg_index i ON i.indrelid = a.attrelid AND i.indisreplident
      WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped
      ORDER BY a.attnum`,
    [table.oid],
  );
  const identity = table.identity as ReplicaIdentity;
  const primaryKey = columns.rows.filter((c) => c.inPk).map((c) => c.name as string);
  const relationColumns: RelationColumn[] = columns.rows.map((c) => ({
    name: c.name,
    typeOid: c.typeOid,
    typeMod: c.typeMod,
    flags: identity === "f" || (identity === "d" && c.inPk) || (identity === "i" && c.inKey) ? 1 : 0,
  }));
  if (identity === "n" || (identity === "d" && primaryKey.length === 0)) {
    throw new PrerequisiteError(
      `table ${ref.schema}.${ref.table} has no primary key and no replica identity, so PostgreSQL would reject its UPDATE and DELETE once published: ` +
        `add a primary key or run ALTER TABLE ${qualified(ref)} REPLICA IDENTITY FULL;`,
    );
  }
  return {
    relation: { tag: "relation", relationOid: table.oid, schema: ref.schema, table: ref.table, replicaIdentity: identity, columns: relationColumns },
    primaryKey,
    toastable: columns.rows.filter((c) => c.storage === "x" || c.storage === "e").map((c) => c.name as string),
  };
}

/**
 * Checks every prerequisite of streaming and creates what is missing and safe to create: the
 * publication for the configured tables and the slot. Refuses tables PostgreSQL would break.
 */
export async function prepareDatabase(query: Query, options: PrepareOptions): Promise<PreparedDatabase> {
  await checkServerVersion(query);
  await checkWalLevel(query);
  await checkReplicationRole(query);
  const applied: string[] = [];
  const existing = await publicationTables(query, options.publication);
  let refs: readonly TableRef[];
  if (options.tables && options.tables.length > 0) {
    refs = options.tables;
  } else if (existing) {
    refs = existing;
  } else {
    throw new PrerequisiteError(
      `publication "${options.publication}" does not exist and no tables are configured: set --tables (it is then created) or run CREATE PUBLICATION ${quoteIdent(options.publication)} FOR TABLE ...;`,
    );
  }
  // Describe (and so check) every table before publishing any of them.
  const tables: PublishedTable[] = [];
  for (const ref of refs) tables.push(await describeTable(query, ref));

  if (!existing) {
    const list = refs.map(qualified).join(", ");
    const sql = `CREATE PUBLICATION ${quoteIdent(options.publication)} FOR TABLE ${list}`;
    await query(sql);
    applied.push(sql);
  } else {
    const missing = refs.filter((r) => !existing.some((e) => e.schema === r.schema && e.table === r.table));
    if (missing.length > 0) {
      const sql = `ALTER PUBLICATION ${quoteIdent(options.publication)} ADD TABLE ${missing.map(qualified).join(", ")}`;
      await query(sql);
      applied.push(sql);
    }
  }

  const slot = await query(
    "SELECT plugin, slot_type, database, confirmed_flush_lsn::text AS confirmed FROM pg_replication_slots WHERE slot_name = $1",
    [options.slot],
  );
  const found = slot.rows[0];
  await options.beforeSlot?.(found ? { database: found.database, confirmedLsn: found.confirmed ? parseLsn(found.confirmed) : null } : null);
  let slotCreated = false;
  if (slot.rowCount === 0) {
    // A failover slot (PostgreSQL 17+) is synchronised to standbys that set sync_replication_slots,
    // so it survives a promotion (docs/operations.md). Not on a standby: only a primary's slot can be one.
    const failover = (await canCreateFailoverSlot(query)) ? ", false, false, true" : "";
    const sql = `SELECT pg_create_logical_replication_slot(${quoteLiteral(options.slot)}, 'pgoutput'${failover})`;
    try {
      await query(sql);
      applied.push(sql);
      slotCreated = true;
    } catch (error) {
      // Another instance created it between our look and our create: that is fine.
      if (!hasSqlState(error, SQLSTATE.duplicateObject)) throw error;
    }
  } else if (slot.rows[0].plugin !== "pgoutput" || slot.rows[0].slot_type !== "logical") {
    throw new PrerequisiteError(
      `replication slot "${options.slot}" uses plugin ${slot.rows[0].plugin}, tera-cdc needs pgoutput: choose another --slot or drop it with SELECT pg_drop_replication_slot(${quoteLiteral(options.slot)});`,
    );
  }
  return { tables, slotCreated, applied };
}

/** Whether a slot created here can be a failover slot: the function takes `failover` (17+) and this server is a primary. */
export async function canCreateFailoverSlot(query: Query): Promise<boolean> {
  const row = (
    await query(
      `SELECT EXISTS (SELECT 1 FROM pg_proc WHERE proname = 'pg_create_logical_replication_slot' AND 'failover' = ANY(proargnames)) AS takes,
              pg_is_in_recovery() AS standby`,
    )
  ).rows[0];
  return row.takes === true && row.standby === false;
}

/** Whether another process streams from the slot now (then this instance is a standby). */
export async function slotHolder(query: Query, slot: string): Promise<number | null> {
  const row = (await query("SELECT active_pid FROM pg_replication_slots WHERE slot_name = $1", [slot])).rows[0];
  return row?.active_pid ?? null;
}
