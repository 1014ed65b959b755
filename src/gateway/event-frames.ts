import type { GatewayEvent } from "./events.js";
import { eventBinary, eventMeta } from "./frames.js";
import type { GatewayStats } from "./stats.js";
import type { Decision } from "./view.js";
import { type Frame, frameBinary, frameText, joinFrames } from "./wire.js";

/** Sent before the event that overflowed a client's key memory (ClientView). */
const OVERFLOW_RESYNC = JSON.stringify({ type: "resync", reason: "the client was shown more objects than the gateway remembers per client" });

/**
 * Each event's frames (meta text, binary) encoded once and shared by every client that gets it:
 * the live stream, replays and the current rows all take their frames from here. The initial
 * rows' frames are kept apart, since their meta says "initial".
 */
export class EventFrames {
  private readonly live = new WeakMap<GatewayEvent, Frame>();
  private readonly initial = new WeakMap<GatewayEvent, Frame>();
  private readonly overflowResync = frameText(OVERFLOW_RESYNC);

  constructor(private readonly stats: Pick<GatewayStats, "eventsEncoded" | "resyncs">) {}

  /** Appends one decision's frames: the resync before it, if any, and the event's two frames. */
  add(out: Frame[], decision: Decision, initial: boolean): void {
    if (decision.resyncFirst) {
      this.stats.resyncs++;
      out.push(this.overflowResync);
    }
    const event = decision.send;
    if (!event) return;
    // An event is always sent with the same leftView (a keys-only delete is an event of its own).
    const cache = initial ? this.initial : this.live;
    let frames = cache.get(event);
    if (!frames) {
      frames = joinFrames([frameText(eventMeta(event, decision.leftView, initial)), frameBinary(eventBinary(event))]);
      cache.set(event, frames);
      this.stats.eventsEncoded++;
    }
    out.push(frames);
  }
}
