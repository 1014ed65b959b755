import { hasSqlState, SQLSTATE } from "../errors.js";
import { type Lsn, parseLsn } from "../lsn.js";
import type { Query } from "./database.js";

/** The slot's confirmed position as PostgreSQL holds it now, or null when there is no such slot. */
export async function slotConfirmedPosition(query: Query, slot: string): Promise<Lsn | null> {
  const row = (await query("SELECT confirmed_flush_lsn::text AS lsn FROM pg_replication_slots WHERE slot_name = $1", [slot])).rows[0] as
    | { lsn: string | null }
    | undefined;
  return row?.lsn ? parseLsn(row.lsn) : null;
}

export type PersistOutcome =
  | { readonly persisted: true; readonly lsn: Lsn }
  | { readonly persisted: false; readonly reason: string };

/**
 * Makes PostgreSQL remember the slot's confirmed position across its own restart, once the
 * replication connection is closed.
 *
 * Why: standby status updates move a slot's `confirmed_flush` in memory only; before
 * PostgreSQL 17 the slot file is written only when the slot is marked dirty for another reason
 * (`restart_lsn` or `catalog_xmin` moving), and a shutdown checkpoint does not write a slot that
 * is not dirty. A clean stop followed by a clean PostgreSQL restart would then replay every change
 * since the slot was last saved. `pg_replication_slot_advance` on the inactive slot, to the
 * position it already has, moves nothing but marks the slot dirty, so the next checkpoint (at the
 * latest the shutdown checkpoint) writes it. Advancing to the slot's own position can never skip a
 * change; it needs only the REPLICATION attribute the streaming role already has.
 *
 * The walsender releases the slot a moment after the connection closes: "active" (55006) is
 * retried until `timeoutMs`. If another instance took the slot meanwhile, it confirms from now on
 * and nothing is done here.
 */
export async function persistConfirmedPosition(query: Query, slot: string, timeoutMs = 3_000): Promise<PersistOutcome> {
  const deadline = Date.now() + timeoutMs;
  // The advance decodes the WAL between restart_lsn and the position: bounded, a stop must end.
  await query("SELECT set_config('statement_timeout', $1, false)", [String(Math.max(1, Math.round(timeoutMs)))]);
  for (;;) {
    try {
      const row = (
        await query(
          `SELECT (pg_replication_slot_advance(slot_name, confirmed_flush_lsn)).end_lsn::text AS lsn
           FROM pg_replication_slots WHERE slot_name = $1 AND confirmed_flush_lsn IS NOT NULL`,
          [slot],
        )
      ).rows[0] as { lsn: string } | undefined;
      if (!row) return { persisted: false, reason: `no logical slot ${slot}` };
      return { persisted: true, lsn: parseLsn(row.lsn) };
    } catch (error) {
      if (!hasSqlState(error, SQLSTATE.objectInUse) || Date.now() >= deadline) return { persisted: false, reason: (error as Error).message };
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
}
