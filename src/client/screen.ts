import { verify } from "../messages/signature.js";
import { type Change, type ChangeOp, changeKey, decodeChanges } from "./change.js";
import { contentDigest, DEFAULT_POSITION_LIMITS, PositionGuard, RecentKeys } from "./dedupe.js";
import type { Received } from "./receipts.js";
import { asError } from "./report.js";
import type { SubscriptionStats } from "./stats.js";

export interface ScreenOptions {
  /** Only messages signed with this key are let through (see SubscribeOptions.signingKey). */
  readonly signingKey?: Uint8Array;
  /** Operations let through; the others are counted as skipped. */
  readonly ops: ReadonlySet<ChangeOp>;
  /** How many recent (lsn, seq) keys are remembered to drop repeats. */
  readonly dedupeWindow: number;
  readonly positionLimits?: { readonly leadBytes: bigint; readonly bytesPerSecond: bigint };
  readonly stats: SubscriptionStats;
  readonly report: (error: Error, change?: Change) => void;
}

/**
 * Which changes of a received message are new and wanted: the signature checked, the payload
 * decoded, the position checked against the newest seen, repeats and conflicts dropped by
 * (lsn, seq), other operations skipped. Every change or message dropped is counted in the stats.
 */
export class MessageScreen {
  private readonly recent: RecentKeys;
  private readonly guard: PositionGuard;

  constructor(private readonly options: ScreenOptions) {
    this.recent = new RecentKeys(options.dedupeWindow);
    this.guard = new PositionGuard(options.positionLimits ?? DEFAULT_POSITION_LIMITS);
  }

  /** The new changes of the message to hand to the handler, in order (none when it is dropped whole). */
  freshChanges(received: Received): Change[] {
    const { stats, report } = this.options;
    const { topic } = received.packet;
    const payload = received.packet.payload as Buffer;
    const props = received.packet.properties?.userProperties as Record<string, string | string[]> | undefined;
    if (this.options.signingKey !== undefined) {
      const verdict = verify(this.options.signingKey, topic, payload, props);
      if (!verdict.ok) {
        if (verdict.reason === "unsigned") stats.unsigned++;
        else stats.badSignatures++;
        report(new Error(`message on ${topic} dropped: ${verdict.reason === "unsigned" ? "not signed" : verdict.detail} (not from the tera-cdc holding the signing key)`));
        return [];
      }
    }
    let decoded: Change[];
    try {
      decoded = decodeChanges(topic, payload, props, received.receivedAt);
    } catch (error) {
      stats.undecodable++;
      report(asError(error));
      return [];
    }
    // Over MQTT 3.1.1 a change has no position to check or dedupe by.
    const refusal = decoded.length > 0 && decoded[0]!.lsn !== "" ? this.guard.check(decoded[0]!.lsnValue) : null;
    if (refusal !== null) {
      stats.refusedPositions++;
      report(new Error(`message on ${topic} at lsn ${decoded[0]!.lsn} dropped: ${refusal}`));
      return [];
    }
    const fresh: Change[] = [];
    for (const change of decoded) {
      // A snapshot row restates a row as read at injection time: a replay may carry newer values
      // and another time at the same position, which is no conflict.
      const digest = change.snapshot !== null ? "snapshot" : contentDigest([change.model, change.op, change.objectJson, change.commitTime, change.table]);
      const recurrence = change.lsn === "" ? "new" : this.recent.check(changeKey(change), digest);
      if (recurrence === "repeat") stats.duplicates++;
      else if (recurrence === "conflict") {
        stats.conflicts++;
        report(new Error(`ALERT: lsn ${change.lsn} seq ${change.seq} came again with different content (${change.model} ${change.op}): kept the first, dropped this one; a second publisher is writing on ${topic}`), change);
      } else if (!this.options.ops.has(change.op)) stats.skipped++;
      else fresh.push(change);
    }
    return fresh;
  }
}
