/**
 * Prepares the database for streaming: the prerequisites checked, the publication created or
 * extended for the configured tables, the slot created.
 */
import { hasSqlState, SQLSTATE } from "../errors.js";
import { type Lsn, parseLsn } from "../lsn.js";
import type { Query } from "./database.js";
import { checkReplicationRole, checkServerVersion, checkWalLevel, PrerequisiteError } from "./prerequisites.js";
import { describeTable, publicationTables, type PublishedTable } from "./published-tables.js";
import { quoteIdent, quoteLiteral } from "./replication.js";
import { canCreateFailoverSlot } from "./slots.js";
import { qualified, type TableRef } from "./table-ref.js";

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
