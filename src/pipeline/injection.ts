import type { TupleValues } from "../decode/pgoutput.js";
import { DB_EVENT_TYPE, objectJson } from "../model/events.js";
import type { Batcher } from "./batcher.js";
import { changeEnvelope, type DbEvent, type Envelope, markerEnvelope, type StreamContext } from "./envelope.js";
import type { InjectedEvents } from "./ports.js";

/**
 * Events a stream observer placed between transactions (a snapshot chunk at its watermark),
 * handed out one envelope at a time so that the caller publishes them under the same
 * back-pressure as live changes. Rows become DB_UPDATE events, batched as live changes are
 * (`--batch-events`: consecutive rows share a TeraEvent); markers carry no event.
 */
export class Injection {
  private next = 0;

  constructor(
    readonly events: InjectedEvents,
    /** A stream position of their own, closed at the message's LSN once all are handed out. */
    readonly context: StreamContext,
    /** Live changes' batch limits; an empty batcher of its own (injection happens between transactions). */
    private readonly batcher: Batcher,
  ) {}

  get done(): boolean {
    return this.next >= this.events.items.length;
  }

  /** The next envelope, and whether it may be replaced by the oversize rule (rows) or not (markers). */
  take(): { readonly envelope: Envelope; readonly replaceable: boolean } {
    const { plan, items } = this.events;
    const item = items[this.next]!;
    if (!("row" in item)) {
      this.next++;
      return { envelope: markerEnvelope(this.context, plan, this.context.seq++, item.marker), replaceable: false };
    }
    if (!this.batcher.enabled) {
      this.next++;
      return { envelope: changeEnvelope(this.context, plan, "update", this.context.seq++, [this.rowEvent(item.row)], null, item.row), replaceable: true };
    }
    // Consecutive rows up to the batch limits; a marker or the end closes the batch.
    for (let current = items[this.next]; current !== undefined && "row" in current; current = items[this.next]) {
      this.next++;
      const [full] = this.batcher.add(plan, this.context.seq++, this.rowEvent(current.row));
      if (full) return { envelope: changeEnvelope(this.context, full.plan, "batch", full.firstSeq, full.events, null, null), replaceable: true };
    }
    const batch = this.batcher.take()!;
    return { envelope: changeEnvelope(this.context, batch.plan, "batch", batch.firstSeq, batch.events, null, null), replaceable: true };
  }

  private rowEvent(row: TupleValues): DbEvent {
    const { plan } = this.events;
    return { type: DB_EVENT_TYPE.update, objectType: plan.model, objectValue: objectJson(plan.columns, row, null, plan.style).json };
  }
}
