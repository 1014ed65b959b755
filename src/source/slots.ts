import type { Query } from "./database.js";

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
