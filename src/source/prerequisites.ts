import { ConfigError } from "../errors.js";
import type { Query } from "./database.js";
import { quoteIdent } from "./replication.js";

/** A prerequisite that is not met: the message names the problem and the fix, on one line (exit 2). */
export class PrerequisiteError extends ConfigError {
  override readonly name = "PrerequisiteError";
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
