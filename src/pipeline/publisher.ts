import type { Checkpointer } from "../checkpoint/checkpointer.js";
import { encodeDatabaseTeraEvent } from "../messages/index.js";
import { SIGNATURE_PROPERTY_BYTES, signed } from "../messages/signature.js";
import { objectJson } from "../model/events.js";
import type { Envelope } from "./envelope.js";
import type { CoreLog, EventSink, OutgoingMessage } from "./ports.js";
import type { PipelineStats } from "./stats.js";

/** What to do with an event the destination cannot take (too large, or refused). */
export type OversizeRule = "keys-only" | "dead-letter" | "skip";

export interface PublisherOptions {
  /** --max-message-bytes; the sink's own limit (the broker's Maximum Packet Size) applies too. */
  readonly maxMessageBytes: number;
  readonly onOversize: OversizeRule;
  readonly deadLetterTopic: string;
  /** When given, every message gets its `sig` user property (src/messages/signature.ts). */
  readonly signingKey?: Uint8Array;
}

/**
 * Hands envelopes to the sink and counts them against their stream position: applies the size
 * limit and the oversize rule before publishing, and the same rule once when the destination
 * refuses a message. Every message is counted sent and, whatever the outcome, delivered: a
 * refused event is replaced or skipped (and logged), never left holding the confirmed position.
 */
export class Publisher {
  constructor(
    private readonly sink: EventSink,
    private readonly checkpointer: Checkpointer,
    private readonly options: PublisherOptions,
    private readonly stats: PipelineStats,
    private readonly log: CoreLog,
  ) {}

  /** Publishes a change (or batch), replacing it first when it does not fit. */
  publish(envelope: Envelope): void {
    if (this.fits(envelope.message)) {
      this.send(envelope, envelope.message, true);
      return;
    }
    this.stats.oversize++;
    const replacement = this.replacementFor(envelope, envelope.message, "oversize");
    if (replacement) this.send(envelope, replacement, true);
  }

  /** Publishes a message with no replacement (a marker): a refusal is logged and skipped. */
  publishAsIs(envelope: Envelope): void {
    this.send(envelope, envelope.message, false);
  }

  private send(envelope: Envelope, message: OutgoingMessage, mayReplace: boolean): void {
    // Every message goes out through here (events, replacements, dead letters, snapshot markers): the one place to sign.
    if (this.options.signingKey) message = { ...message, properties: signed(this.options.signingKey, message.topic, message.payload, message.properties) };
    const position = envelope.context.position;
    this.checkpointer.sent(position);
    this.stats.messages++;
    this.stats.bytes += message.payload.length;
    this.sink.publish(message, (error) => {
      if (error && mayReplace) {
        this.stats.rejected++;
        this.log.warn({ topic: message.topic, lsn: message.properties.lsn, seq: message.properties.seq }, `broker refused an event: ${error.message}`);
        const replacement = this.replacementFor(envelope, message, `refused: ${error.message}`);
        if (replacement) this.send(envelope, replacement, false);
      } else if (error) {
        this.stats.skipped++;
        this.log.error({ topic: message.topic, lsn: message.properties.lsn, seq: message.properties.seq }, `broker refused the replacement event too, skipped: ${error.message}`);
      }
      this.checkpointer.delivered(position);
    });
  }

  /** Whether the sink's limit (the broker's Maximum Packet Size) and --max-message-bytes let this message through. */
  private fits(message: OutgoingMessage): boolean {
    const signature = this.options.signingKey ? SIGNATURE_PROPERTY_BYTES : 0;
    return this.sink.messageBytes(message) + signature <= Math.min(this.options.maxMessageBytes, this.sink.maxMessageBytes);
  }

  /** What to publish instead of an event the destination cannot take; null to skip it. */
  private replacementFor(envelope: Envelope, message: OutgoingMessage, reason: string): OutgoingMessage | null {
    const { plan, context, events, row } = envelope;
    const rule = this.options.onOversize;
    const where = { table: plan.qualifiedName, lsn: context.lsnText, seq: message.properties.seq, bytes: message.payload.length };
    if (rule === "skip") {
      this.stats.skipped++;
      this.log.warn(where, `event skipped (${reason}) by --on-oversize skip`);
      return null;
    }
    const keysOnly = events.map((e, i) => ({
      ...e,
      objectValue: row && events.length === 1 && i === 0 ? objectJson(plan.deleteColumns, row, null, { separator: plan.style.separator, joined: [] }).json : "{}",
    }));
    const properties = { ...message.properties, "keys-only": "true", reason };
    if (rule === "dead-letter") {
      const deadLetter = this.options.deadLetterTopic;
      const full: OutgoingMessage = { topic: deadLetter, payload: message.payload, properties: { ...properties, "keys-only": "false", "original-topic": message.topic } };
      this.log.warn(where, `event routed to ${deadLetter} (${reason})`);
      if (this.fits(full)) return full;
      return { topic: deadLetter, payload: encodeDatabaseTeraEvent(plan.dottedTopic, context.commitSeconds, keysOnly), properties: { ...properties, "original-topic": message.topic } };
    }
    this.log.warn(where, `event published with its keys only (${reason})`);
    return { topic: message.topic, payload: encodeDatabaseTeraEvent(plan.dottedTopic, context.commitSeconds, keysOnly), properties };
  }
}
