import { hasSqlState, SQLSTATE } from "../errors.js";
import type { Query } from "../source/database.js";
import { slotHolder } from "../source/slots.js";

/**
 * Another instance streams from the slot: waits, polling every `pollMs`, until it lets go (or
 * `stopped()`). `onWait` is told the holder's PID once, when waiting starts. Whether it waited.
 */
export async function waitWhileSlotHeld(options: {
  readonly slot: string;
  readonly pollMs: number;
  readonly withDatabase: <T>(work: (query: Query) => Promise<T>) => Promise<T>;
  readonly sleep: (ms: number) => Promise<void>;
  readonly stopped: () => boolean;
  readonly onWait: (pid: number) => void;
}): Promise<boolean> {
  let holder = await options.withDatabase((query) => slotHolder(query, options.slot)).catch(() => null);
  if (holder === null) return false;
  options.onWait(holder);
  while (holder !== null && !options.stopped()) {
    await options.sleep(options.pollMs);
    const previous: number | null = holder;
    holder = await options.withDatabase((query) => slotHolder(query, options.slot)).catch(() => previous);
  }
  return true;
}

/** The replication connection was refused because another process streams from the slot. */
export function isSlotInUse(error: Error): boolean {
  return hasSqlState(error, SQLSTATE.objectInUse);
}
