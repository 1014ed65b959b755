import { FatalError } from "../errors.js";
import type { Lsn } from "../lsn.js";
import { DeliveryTracker, type TrackedPosition } from "./tracker.js";

/** Where a confirmed position goes: the replication stream's standby status update. */
export interface ConfirmTarget {
  confirm(lsn: Lsn, minIntervalMs?: number): void;
}

export interface CheckpointerOptions {
  /** Least time between two status updates sent because the safe position moved. */
  readonly minIntervalMs: number;
  /** Told every confirmed position, after the target (snapshots, the stats). */
  readonly onConfirmed?: (lsn: Lsn) => void;
}

/**
 * Owns the delivery tracker and is the only caller of `confirm()`: the position PostgreSQL may
 * discard moves only when everything before it is delivered, and never backwards. A backwards
 * move would be a bug here (the server would replay, or worse, a later confirm would skip): it
 * is refused with a FatalError rather than ignored, as sequin's slot producer does.
 */
export class Checkpointer {
  private confirmed: Lsn;

  constructor(
    start: Lsn,
    private readonly target: ConfirmTarget,
    private readonly options: CheckpointerOptions,
    /** Replaceable only so a test can make it misbehave and see the refusal. */
    private readonly tracker: DeliveryTracker = new DeliveryTracker(start),
  ) {
    this.confirmed = start;
  }

  /** Everything before this position is delivered. */
  get safeLsn(): Lsn {
    return this.tracker.safeLsn;
  }

  /** A transaction (or injected events) begins: its messages count against this position. */
  open(): TrackedPosition {
    return this.tracker.open();
  }

  /** One more message of this position is on its way to the sink. */
  sent(position: TrackedPosition): void {
    this.tracker.sent(position);
  }

  /** The sink has one message of this position (in any order with the others). */
  delivered(position: TrackedPosition): void {
    if (this.tracker.delivered(position)) this.confirmSafe();
  }

  /** The position is complete at `endLsn` (a commit's end, an injection's message LSN). */
  close(position: TrackedPosition, endLsn: Lsn): void {
    if (this.tracker.close(position, endLsn)) this.confirmSafe();
  }

  /** The stream passed `lsn` outside any transaction (a keepalive): confirmable after what is queued. */
  passed(lsn: Lsn): void {
    if (this.tracker.passed(lsn)) this.confirmSafe();
  }

  /** Sends the safe position now, whatever the interval (at a stream's end). */
  flush(): Lsn {
    const safe = this.take();
    this.target.confirm(safe, 0);
    return safe;
  }

  private confirmSafe(): void {
    const safe = this.take();
    this.target.confirm(safe, this.options.minIntervalMs);
    this.options.onConfirmed?.(safe);
  }

  private take(): Lsn {
    const safe = this.tracker.safeLsn;
    if (safe < this.confirmed) {
      throw new FatalError(`refusing to move the confirmed position backwards from ${this.confirmed} to ${safe}: a delivery-tracking bug`);
    }
    this.confirmed = safe;
    return safe;
  }
}
