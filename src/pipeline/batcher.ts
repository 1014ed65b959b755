import type { RelationPlan } from "../model/plan.js";
import type { DbEvent } from "./envelope.js";

/** Consecutive changes of one model in one transaction, published as one TeraEvent. */
export interface Batch {
  readonly plan: RelationPlan;
  /** `seq` of the first change. */
  readonly firstSeq: number;
  readonly events: DbEvent[];
  /** An estimate of the encoded size (JSON, model name, framing). */
  bytes: number;
}

const NONE: readonly Batch[] = Object.freeze([]);

/**
 * Groups consecutive changes of one model (up to `maxEvents` events or `maxBytes`), so that a
 * bulk transaction becomes fewer, larger messages (`--batch-events`). Pure: it says which
 * batches are complete; the caller publishes them, in order, before anything that follows.
 */
export class Batcher {
  private current: Batch | null = null;

  constructor(
    private readonly maxEvents: number,
    private readonly maxBytes: number,
  ) {}

  /** Whether batching is on at all (`--batch-events` above 1). */
  get enabled(): boolean {
    return this.maxEvents > 1;
  }

  /** Adds a change; returns the batches now complete (another model's open batch, or this one full). */
  add(plan: RelationPlan, seq: number, event: DbEvent): readonly Batch[] {
    let previous: Batch | null = null;
    if (this.current && this.current.plan !== plan) {
      previous = this.current;
      this.current = null;
    }
    const batch = (this.current ??= { plan, firstSeq: seq, events: [], bytes: 0 });
    batch.events.push(event);
    batch.bytes += event.objectValue.length + plan.model.length + 64;
    const full = batch.events.length >= this.maxEvents || batch.bytes >= this.maxBytes;
    if (full) this.current = null;
    // No array per change in the common case (hot path).
    if (previous) return full ? [previous, batch] : [previous];
    return full ? [batch] : NONE;
  }

  /** Ends the open batch (a change that is not batched comes next, or the transaction ends). */
  take(): Batch | null {
    const batch = this.current;
    this.current = null;
    return batch;
  }
}
