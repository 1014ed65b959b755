import { DB_EVENT_TYPE, objectJson } from "../model/events.js";
import { changeEnvelope, type Envelope, markerEnvelope, type StreamContext } from "./envelope.js";
import type { InjectedEvents } from "./ports.js";

/**
 * Events a stream observer placed between transactions (a snapshot chunk at its watermark),
 * handed out one envelope at a time so that the caller publishes them under the same
 * back-pressure as live changes. Rows become DB_UPDATE events; markers carry no event.
 */
export class Injection {
  private next = 0;

  constructor(
    readonly events: InjectedEvents,
    /** A stream position of their own, closed at the message's LSN once all are handed out. */
    readonly context: StreamContext,
  ) {}

  get done(): boolean {
    return this.next >= this.events.items.length;
  }

  /** The next envelope, and whether it may be replaced by the oversize rule (rows) or not (markers). */
  take(): { readonly envelope: Envelope; readonly replaceable: boolean } {
    const { plan, items } = this.events;
    const item = items[this.next++]!;
    const seq = this.context.seq++;
    if ("row" in item) {
      const event = { type: DB_EVENT_TYPE.update, objectType: plan.model, objectValue: objectJson(plan.columns, item.row, null, plan.style).json };
      return { envelope: changeEnvelope(this.context, plan, "update", seq, [event], null, item.row), replaceable: true };
    }
    return { envelope: markerEnvelope(this.context, plan, seq, item.marker), replaceable: false };
  }
}
