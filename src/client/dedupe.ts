/**
 * Remembers the keys of the most recent changes to drop repeats. tera-cdc re-publishes the
 * unconfirmed tail of the stream after a restart (and a broker re-sends unacknowledged QoS 1
 * messages after a reconnect) with the same (lsn, seq); a window larger than that tail catches
 * every repeat while memory stays bounded. Pure: no I/O.
 */
export class RecentKeys {
  private readonly keys = new Set<string>();

  constructor(readonly capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new Error(`dedupe window ${capacity} is not a whole number >= 1: give the number of recent changes to remember`);
  }

  /** True if `key` was seen within the window; otherwise remembers it (forgetting the oldest key when full) and returns false. */
  seen(key: string): boolean {
    if (this.keys.has(key)) return true;
    this.keys.add(key);
    if (this.keys.size > this.capacity) {
      // A Set iterates in insertion order: the first key is the oldest.
      this.keys.delete(this.keys.values().next().value as string);
    }
    return false;
  }

  get size(): number {
    return this.keys.size;
  }
}
