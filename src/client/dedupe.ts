/**
 * Remembers the keys of the most recent changes to drop repeats. tera-cdc re-publishes the
 * unconfirmed tail of the stream after a restart (and a broker re-sends unacknowledged QoS 1
 * messages after a reconnect) with the same (lsn, seq); a window larger than that tail catches
 * every repeat while memory stays bounded. Each key keeps a digest of its content, so a "repeat"
 * whose content differs (a forged or foreign message claiming a position) is told apart from a
 * true replay. Pure: no I/O.
 */
import { createHash } from "node:crypto";

export type Recurrence = "new" | "repeat" | "conflict";

export class RecentKeys {
  private readonly keys = new Map<string, string>();

  constructor(readonly capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new Error(`dedupe window ${capacity} is not a whole number >= 1: give the number of recent changes to remember`);
  }

  /** True if `key` was seen within the window; otherwise remembers it (forgetting the oldest key when full) and returns false. */
  seen(key: string): boolean {
    return this.check(key, "") !== "new";
  }

  /**
   * "new" (and remembered) the first time within the window; "repeat" when the key was seen with
   * the same digest; "conflict" when it was seen with another one (the first content is kept).
   */
  check(key: string, digest: string): Recurrence {
    const known = this.keys.get(key);
    if (known !== undefined) return known === digest ? "repeat" : "conflict";
    this.keys.set(key, digest);
    if (this.keys.size > this.capacity) {
      // A Map iterates in insertion order: the first key is the oldest.
      this.keys.delete(this.keys.keys().next().value as string);
    }
    return "new";
  }

  get size(): number {
    return this.keys.size;
  }
}

/** A short digest of what a change says (not where it came from): equal for a true replay. */
export function contentDigest(parts: readonly string[]): string {
  const hash = createHash("sha256");
  for (const part of parts) hash.update(`${part.length}:`).update(part);
  return hash.digest("base64").slice(0, 22);
}

/**
 * Refuses positions far ahead of the newest one accepted. A WAL position can only grow as fast as
 * PostgreSQL writes WAL: a message claiming to be further ahead than `leadBytes` plus
 * `bytesPerSecond` for every second since the newest accepted one did not come from the stream
 * being followed (a forged `FFFFFFFF/FFFFFF00`, or another database's tera-cdc on the same broker),
 * and taking it would make every later real change look like a repeat. Pure: the clock is given.
 */
export class PositionGuard {
  private newest: bigint | null;
  private newestAt: number;

  constructor(
    private readonly limits: { readonly leadBytes: bigint; readonly bytesPerSecond: bigint } = DEFAULT_POSITION_LIMITS,
    private readonly now: () => number = Date.now,
    start: bigint | null = null,
  ) {
    this.newest = start;
    this.newestAt = now();
  }

  /** Null when `lsn` is acceptable (and remembered when it is the newest); else why it is refused. */
  check(lsn: bigint): string | null {
    const now = this.now();
    if (this.newest !== null && lsn > this.newest) {
      const seconds = BigInt(Math.max(0, Math.floor((now - this.newestAt) / 1000)));
      const allowed = this.newest + this.limits.leadBytes + this.limits.bytesPerSecond * seconds;
      if (lsn > allowed) return `position is ${lsn - this.newest} bytes of WAL ahead of the newest seen, more than the ${allowed - this.newest} the database can have written since`;
    }
    if (this.newest === null || lsn > this.newest) {
      this.newest = lsn;
      this.newestAt = now;
    }
    return null;
  }
}

/**
 * 1 TiB plus 1 GiB per second: far beyond any PostgreSQL's WAL rate, far below a forged
 * FFFFFFFF/... The lead is large because the clock is the consumer's: a `run` catching up after a
 * lag delivers, within a second, changes whose WAL was written over hours (a bulk load of an
 * unpublished table between two published changes); only a gap of more than 1 TiB between two
 * consecutive published changes received in quick succession would be refused wrongly.
 */
export const DEFAULT_POSITION_LIMITS = { leadBytes: 1n << 40n, bytesPerSecond: 1n << 30n } as const;
