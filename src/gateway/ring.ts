import { comparePositions, type GatewayEvent } from "./events.js";
import type { Lsn } from "../lsn.js";

export interface Position {
  readonly lsn: Lsn;
  readonly seq: number;
}

/**
 * The most recent events, bounded by count and by bytes (pure). Events are appended in commit
 * order; the oldest are dropped first, never one from the middle, so the buffer always holds every
 * event after its oldest one. That is what makes `after()` sound.
 */
export class EventRing {
  private readonly items: GatewayEvent[] = [];
  /** What holding each item costs (its bytes, plus what it keeps alive elsewhere: pushed with it). */
  private readonly costs: number[] = [];
  private head = 0;
  private bytes = 0;
  /** The newest event dropped; every event after it is held. */
  private dropped: Position | null = null;

  constructor(
    private readonly maxEvents: number,
    private readonly maxBytes: number,
    /** Told of each event the ring lets go (dropped as the oldest, or at a gap), so what hangs on it can go too. */
    private readonly onDrop: (event: GatewayEvent) => void = () => {},
  ) {}

  get size(): number {
    return this.items.length - this.head;
  }

  get totalBytes(): number {
    return this.bytes;
  }

  get oldest(): GatewayEvent | undefined {
    return this.items[this.head];
  }

  get newest(): GatewayEvent | undefined {
    return this.size > 0 ? this.items[this.items.length - 1] : undefined;
  }

  /**
   * Events may have been missed before the next one (the broker connection was lost): nothing
   * held so far can serve a resume any more.
   */
  markGap(): void {
    for (let i = this.head; i < this.items.length; i++) this.onDrop(this.items[i]!);
    this.items.length = 0;
    this.costs.length = 0;
    this.head = 0;
    this.bytes = 0;
    this.dropped = null;
  }

  /** Appends an event; `alsoKeeps`: bytes it keeps alive elsewhere while held (the row it replaced). */
  push(event: GatewayEvent, alsoKeeps = 0): void {
    const cost = event.bytes + alsoKeeps;
    this.items.push(event);
    this.costs.push(cost);
    this.bytes += cost;
    while (this.size > 1 && (this.size > this.maxEvents || this.bytes > this.maxBytes)) {
      const oldest = this.items[this.head]!;
      this.bytes -= this.costs[this.head]!;
      this.dropped = oldest;
      this.items[this.head++] = undefined as unknown as GatewayEvent;
      this.onDrop(oldest);
    }
    // Compact now and then rather than shifting the arrays on every drop.
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items.splice(0, this.head);
      this.costs.splice(0, this.head);
      this.head = 0;
    }
  }

  /** The held event at exactly `position`, if any (binary search: events are in position order). */
  find(position: Position): GatewayEvent | undefined {
    let lo = this.head;
    let hi = this.items.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const order = comparePositions(this.items[mid]!, position);
      if (order === 0) return this.items[mid];
      if (order < 0) lo = mid + 1;
      else hi = mid;
    }
    return undefined;
  }

  /**
   * The events after `position`, or null when the buffer cannot prove it holds all of them: the
   * position is before the newest dropped event (or, when none was dropped, before the oldest
   * held: the gateway was not listening then), or after anything held (the gateway restarted, or
   * the position is not one it handed out).
   */
  after(position: Position): GatewayEvent[] | null {
    const oldest = this.oldest;
    const newest = this.newest;
    if (!oldest || !newest) return null;
    const floor = this.dropped ?? oldest;
    if (comparePositions(position, floor) < 0 || comparePositions(position, newest) > 0) return null;
    // Binary search for the first event after the position.
    let lo = this.head;
    let hi = this.items.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (comparePositions(this.items[mid]!, position) <= 0) lo = mid + 1;
      else hi = mid;
    }
    return this.items.slice(lo);
  }
}
