import { performance } from "node:perf_hooks";
import type { EventFrames } from "./event-frames.js";
import { comparePositions, type GatewayEvent } from "./events.js";
import type { Outlet } from "./outlet.js";
import type { Position } from "./ring.js";
import { type AccessRules, audienceOf, type Claims, claimsRead, objectKey } from "./rules.js";
import type { GatewayStats } from "./stats.js";
import { type ClientView, verdictOf } from "./view.js";
import type { Frame } from "./wire.js";

/**
 * The least time between the end of one flush and the next (see flushSoon); the gap also grows to
 * the last flush's own duration, at most MAX_FLUSH_GAP_MS.
 */
const FLUSH_INTERVAL_MS = 5;
const MAX_FLUSH_GAP_MS = 25;

/** What the fan-out needs of a connected client. */
export interface Recipient {
  readonly view: ClientView;
  readonly outlet: Outlet;
  /**
   * Resumed at a position this instance had not reached: events up to it update the client's
   * memory but are not sent (it has them), and no position frame is sent before it.
   */
  skipThrough: Position | null;
}

/**
 * The connected clients whose tokens the rules cannot tell apart (same values of every claim the
 * rules read): each event's rules are evaluated once for all of them.
 */
interface Audience {
  readonly key: string;
  readonly claims: Claims;
  readonly members: Set<Recipient>;
}

/**
 * The live fan-out: which clients get each new event, and when their writes go. Per audience and
 * event the rules are evaluated once; per client what is left is its own key memory (ClientView)
 * and frames encoded once per event (issue 18 point 5), queued on its outlet and written at the
 * next flush: one write per client per flush.
 */
export class FanOut {
  private readonly audiences = new Map<string, Audience>();
  private readonly claimNames: readonly string[];
  /** Outlets with frames queued for the next flush. */
  private queued = new Set<Outlet>();
  private flushTimer: NodeJS.Timeout | null = null;
  /** When the next flush may start (the end of the last one plus the gap). */
  private nextFlushAt = Number.NEGATIVE_INFINITY;

  constructor(
    private readonly rules: AccessRules,
    private readonly frames: EventFrames,
    private readonly stats: Pick<GatewayStats, "audiences">,
  ) {
    this.claimNames = claimsRead(rules);
  }

  /** Adds a client to the audience of its claims; returns what takes it out again (when it disconnects). */
  join(recipient: Recipient, claims: Claims): () => void {
    const key = audienceOf(this.claimNames, claims);
    let audience = this.audiences.get(key);
    if (!audience) {
      audience = { key, claims, members: new Set() };
      this.audiences.set(key, audience);
    }
    audience.members.add(recipient);
    this.stats.audiences = this.audiences.size;
    const joined = audience;
    return () => {
      joined.members.delete(recipient);
      if (joined.members.size === 0) this.audiences.delete(joined.key);
      this.stats.audiences = this.audiences.size;
    };
  }

  /** Queues new events (in stream order) for every client that may see them, and schedules the flush. */
  deliver(events: readonly GatewayEvent[]): void {
    const rules = this.rules;
    const keys = events.map((e) => objectKey(rules, e.model, e.object));
    for (const audience of this.audiences.values()) {
      const verdicts = events.map((e, i) => verdictOf(rules, audience.claims, e, keys[i]));
      for (const recipient of audience.members) {
        const view = recipient.view;
        let out: Frame[] | null = null;
        for (let i = 0; i < events.length; i++) {
          const decision = view.decide(events[i]!, verdicts[i]);
          if (recipient.skipThrough !== null) {
            if (comparePositions(events[i]!, recipient.skipThrough) <= 0) continue;
            recipient.skipThrough = null;
          }
          if (decision.send !== null || decision.resyncFirst) this.frames.add((out ??= []), decision, false);
        }
        if (out && recipient.outlet.queue(out)) this.queued.add(recipient.outlet);
      }
    }
    this.flushSoon();
  }

  stop(): void {
    if (this.flushTimer) clearTimeout(this.flushTimer);
  }

  /**
   * Writes the queued frames now, or, when the last flush ended less than a gap ago, then: at a low
   * rate every event goes out at once, and under load each client gets the events of a few
   * milliseconds in one write (one system call, which is most of the cost of a delivery) instead
   * of one write per event. The gap is the last flush's duration (5 to 25 ms): the busier the
   * gateway, the more events each write carries, so at most about half its time goes to writing.
   */
  private flushSoon(): void {
    if (this.flushTimer) return;
    const wait = this.nextFlushAt - performance.now();
    if (wait <= 0) this.flush();
    else {
      this.flushTimer = setTimeout(() => {
        this.flushTimer = null;
        this.flush();
      }, wait);
    }
  }

  private flush(): void {
    const started = performance.now();
    const queued = this.queued;
    this.queued = new Set();
    for (const outlet of queued) outlet.flush();
    const ended = performance.now();
    this.nextFlushAt = ended + Math.min(MAX_FLUSH_GAP_MS, Math.max(FLUSH_INTERVAL_MS, ended - started));
  }
}
