import type { Lsn } from "../lsn.js";

/**
 * One transaction (or keepalive position) in stream order, with how many of its messages the
 * broker has not acknowledged yet.
 */
export interface TrackedPosition {
  pending: number;
  /** Where the stream may be confirmed once this entry and all before it are delivered; null while open. */
  endLsn: Lsn | null;
}

/**
 * Works out the LSN that is safe to confirm to PostgreSQL: the end of the newest transaction such
 * that every message of it and of every earlier transaction has been acknowledged by the broker.
 * Acknowledgements may arrive in any order; positions only move forward. Memory is one small
 * object per transaction in flight, whatever the transaction's size.
 */
export class DeliveryTracker {
  private readonly queue: TrackedPosition[] = [];
  private head = 0;
  private safe: Lsn;

  constructor(start: Lsn) {
    this.safe = start;
  }

  /** The position confirmed so far. */
  get safeLsn(): Lsn {
    return this.safe;
  }

  /** Transactions and positions not yet confirmable. */
  get backlog(): number {
    return this.queue.length - this.head;
  }

  open(): TrackedPosition {
    const entry: TrackedPosition = { pending: 0, endLsn: null };
    this.queue.push(entry);
    return entry;
  }

  sent(entry: TrackedPosition): void {
    entry.pending++;
  }

  /** @returns whether the safe position moved. */
  delivered(entry: TrackedPosition): boolean {
    entry.pending--;
    return this.advance();
  }

  /** @returns whether the safe position moved. */
  close(entry: TrackedPosition, endLsn: Lsn): boolean {
    entry.endLsn = endLsn;
    return this.advance();
  }

  /**
   * A position with nothing of ours before it but what is already queued (a keepalive's WAL end,
   * or the end of a transaction that published nothing): confirmable once those are delivered.
   */
  passed(lsn: Lsn): boolean {
    if (this.backlog === 0) {
      if (lsn <= this.safe) return false;
      this.safe = lsn;
      return true;
    }
    return this.close(this.open(), lsn);
  }

  private advance(): boolean {
    let moved = false;
    while (this.head < this.queue.length) {
      const entry = this.queue[this.head]!;
      if (entry.endLsn === null || entry.pending > 0) break;
      if (entry.endLsn > this.safe) {
        this.safe = entry.endLsn;
        moved = true;
      }
      this.head++;
    }
    if (this.head > 1024 && this.head * 2 > this.queue.length) {
      this.queue.splice(0, this.head);
      this.head = 0;
    }
    return moved;
  }
}
