import { formatLsn } from "../lsn.js";
import type { Client } from "./client.js";
import type { EventFrames } from "./event-frames.js";
import { comparePositions, type GatewayEvent } from "./events.js";
import type { EventRing, Position } from "./ring.js";
import type { RowStore } from "./rows.js";
import { type AccessRules, objectKey } from "./rules.js";
import type { SessionStore } from "./sessions.js";
import type { GatewayStats } from "./stats.js";
import { verdictOf } from "./view.js";
import type { Frame } from "./wire.js";

const UNKNOWN_SESSION = "unknown session: the gateway restarted or forgot it";

/** Where a client asks to resume from (a subscribe with `after`). */
export interface ResumeFrom {
  readonly after: Position;
  /** `after` as the client spelled it, for the reason of a refusal. */
  readonly afterText: string;
  /** Every row the client holds changed at or after it (the rows frame's origin); needed to resume without the session. */
  readonly origin: Position | undefined;
  readonly session: string | undefined;
}

/**
 * Resume: a reconnecting client gets exactly the changes after its last position that its token
 * may see, decided with its key memory: the memory of its previous session on this instance, or,
 * without it, rebuilt from the rows as they were at that position (docs/gateway.md, Resume).
 */
export class Resumer {
  constructor(
    private readonly rules: AccessRules,
    private readonly sessions: SessionStore,
    private readonly ring: EventRing,
    private readonly rows: RowStore,
    private readonly frames: EventFrames,
    /** The newest event taken from the broker (kept apart from the ring, which a gap empties). */
    private readonly newest: () => Position | null,
    private readonly stats: Pick<GatewayStats, "resumes" | "positionResumes">,
  ) {}

  /**
   * Replays what the client missed of `models` (already in its view) and returns how many changes
   * it got, or the reason it cannot resume (for the resync).
   */
  resume(client: Client, models: readonly string[], from: ResumeFrom): number | string {
    const earlier = from.session ? this.sessions.get(from.session) : undefined;
    const missed = this.ring.after(from.after);
    const reason =
      earlier === undefined || earlier === client.session
        ? UNKNOWN_SESSION
        : client.session.owner === null
          ? "the token has no string sub claim: a session can be resumed only by a token with the same iss and sub"
          : earlier.owner !== client.session.owner
            ? "the session belongs to another subject"
            : missed === null
              ? `position ${from.afterText} is no longer held by the gateway`
              : null;
    if (reason === null && earlier && missed) {
      if (earlier.socket) earlier.socket.terminate();
      client.view.adoptMemory(earlier.view);
      this.sessions.delete(earlier);
      this.stats.resumes++;
      return this.replay(client, missed, models);
    }
    // Not this instance's session (another instance behind the load balancer, or a restart):
    // resume from the position itself when this instance can rebuild what the client holds.
    const fromPosition = from.origin
      ? this.resumeFromPosition(client, models, from.after, from.origin)
      : "no origin: the subscribe names no origin, so the rows the client holds cannot be rebuilt";
    if (typeof fromPosition === "number") {
      this.stats.positionResumes++;
      return fromPosition;
    }
    return reason === UNKNOWN_SESSION ? `${reason}, and ${fromPosition}` : (reason ?? fromPosition);
  }

  /** Sends the events after a resume position under the client's view; returns how many of them it got. */
  private replay(client: Client, events: readonly GatewayEvent[], models: readonly string[]): number {
    let count = 0;
    const out: Frame[] = [];
    for (const event of events) {
      const decision = client.view.decide(event);
      if (decision.send && models.includes(decision.send.model)) count++;
      if (decision.send !== null || decision.resyncFirst) this.frames.add(out, decision, false);
    }
    client.outlet.send(out);
    return count;
  }

  /**
   * Resume without the session (issue 18 point 6): every instance takes the same stream, so the
   * client's last position means the same here. The client's key memory is rebuilt as the rows
   * of its models visible to its own claims as they were at that position (RowStore.rowsBefore),
   * then what it missed is replayed. Sound when this instance knows every row the client may hold:
   * it has tracked rows since no later than the client's origin. When this instance is behind the
   * position (it has not yet taken what the client has), the client's memory is this instance's
   * rows now, and the events up to the position are applied to it without being sent.
   * A string is the reason it cannot, for the resync.
   */
  private resumeFromPosition(client: Client, models: readonly string[], after: Position, origin: Position): number | string {
    const tracked = this.rows.origin;
    if (tracked === null || comparePositions(tracked, origin) > 0) {
      return `this gateway has known rows only since ${tracked ? `${formatLsn(tracked.lsn)}/${tracked.seq}` : "now"}, after the client's origin ${formatLsn(origin.lsn)}/${origin.seq}`;
    }
    const newest = this.newest();
    const ahead = newest !== null && comparePositions(after, newest) > 0;
    const missed = ahead ? [] : this.ring.after(after);
    if (missed === null) return `position ${formatLsn(after.lsn)}/${after.seq} is no longer held by the gateway`;
    const view = client.view;
    const rules = this.rules;
    for (const model of models) {
      const rows = this.rows.rowsBefore(model, missed);
      if (rows === null) return `the rows of ${model} at that position are not known here (a truncate since, or more rows than --max-rows)`;
      for (const row of rows) {
        const key = objectKey(rules, model, row.object);
        if (key === undefined || !verdictOf(rules, view.claims, row, key).row) continue;
        if (!view.markShown(model, key)) return "the client holds more objects than the gateway remembers per client";
      }
    }
    if (ahead) client.skipThrough = after;
    return this.replay(client, missed, models);
  }
}
