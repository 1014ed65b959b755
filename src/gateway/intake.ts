import { DEFAULT_POSITION_LIMITS, PositionGuard } from "../client/dedupe.js";
import { verify } from "../messages/signature.js";
import type { Logger } from "../ops/log.js";
import { comparePositions, eventsFromMessage, type GatewayEvent } from "./events.js";
import type { EventRing, Position } from "./ring.js";
import type { RowStore } from "./rows.js";
import type { GatewayStats } from "./stats.js";

type Properties = Record<string, string | string[]>;

export interface IntakeSettings {
  /** When given, only broker messages whose `sig` verifies are taken (src/messages/signature.ts). */
  readonly signingKey?: Uint8Array;
  /** How far ahead of the newest event one may be (see PositionGuard); default 1 TiB + 1 GiB/s. */
  readonly positionLimits?: { readonly leadBytes: bigint; readonly bytesPerSecond: bigint };
  readonly logger: Logger;
}

/**
 * Broker messages into the events the gateway takes, in stream order: the signature checked,
 * decoded (one event per row), positions far ahead refused, repeats dropped (a repeat with other
 * content is an alert), and each new event applied to the current rows and pushed on the ring.
 */
export class EventIntake {
  /** Newest event taken from the broker (kept apart from the ring, which a gap empties). */
  private last: GatewayEvent | null = null;
  private readonly guard: PositionGuard;

  constructor(
    private readonly settings: IntakeSettings,
    private readonly ring: EventRing,
    private readonly rows: RowStore,
    private readonly stats: Pick<GatewayStats, "events" | "duplicates" | "undecodable" | "unsigned" | "badSignatures" | "refusedPositions" | "conflicts">,
  ) {
    this.guard = new PositionGuard(settings.positionLimits ?? DEFAULT_POSITION_LIMITS);
  }

  get newest(): Position | null {
    return this.last;
  }

  /** Whether the message comes from the tera-cdc holding the signing key (always, without one); a dropped one is counted and logged. */
  authentic(topic: string, payload: Buffer, properties: Properties): boolean {
    if (this.settings.signingKey === undefined) return true;
    const verdict = verify(this.settings.signingKey, topic, payload, properties);
    if (verdict.ok) return true;
    if (verdict.reason === "unsigned") this.stats.unsigned++;
    else this.stats.badSignatures++;
    this.settings.logger.warn({ topic }, `event dropped: ${verdict.reason === "unsigned" ? "not signed" : verdict.detail} (not from the tera-cdc holding the signing key)`);
    return false;
  }

  /** The new events of an authentic message, already in the rows and the ring (none when it is dropped). */
  take(topic: string, payload: Buffer, properties: Properties): GatewayEvent[] {
    const logger = this.settings.logger;
    let events: GatewayEvent[];
    try {
      events = eventsFromMessage(payload, properties);
    } catch (error) {
      this.stats.undecodable++;
      logger.warn({ topic }, `event dropped: ${(error as Error).message}`);
      return [];
    }
    const refusal = events.length > 0 ? this.guard.check(events[0]!.lsn) : null;
    if (refusal !== null) {
      this.stats.refusedPositions++;
      logger.warn({ topic, lsn: events[0]!.lsnText }, `event dropped: ${refusal}`);
      return [];
    }
    const accepted: GatewayEvent[] = [];
    for (const event of events) {
      // tera-cdc resends from its confirmed LSN after a restart, and QoS 1 may duplicate: the
      // stream is in commit order, so anything not after the newest event is a repeat.
      if (this.last && comparePositions(event, this.last) <= 0) {
        const held = this.ring.find(event);
        if (held && !sameContent(held, event)) {
          this.stats.conflicts++;
          logger.error({ topic, lsn: event.lsnText, seq: event.seq, model: event.model }, "ALERT: a position came again with different content: kept the first, dropped this one; a second publisher is writing on the event topics");
        } else this.stats.duplicates++;
        continue;
      }
      this.last = event;
      // The row the event replaced stays in memory while the event is in the ring: the ring counts it.
      const replaced = this.rows.apply(event);
      this.ring.push(event, replaced?.bytes ?? 0);
      this.stats.events++;
      accepted.push(event);
    }
    return accepted;
  }
}

/**
 * Whether a repeat says what the held event said (a true replay), position aside. Snapshot rows
 * restate rows as read at injection time: a replay may carry newer values, which is no conflict.
 */
function sameContent(a: GatewayEvent, b: GatewayEvent): boolean {
  if (a.snapshot !== undefined || b.snapshot !== undefined) return a.snapshot === b.snapshot;
  return a.model === b.model && a.type === b.type && a.op === b.op && a.objectValue === b.objectValue && a.commitTime === b.commitTime && a.table === b.table;
}
