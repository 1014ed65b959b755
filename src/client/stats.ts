/** The counters of a subscription: what came, what was handed on, what was dropped and why. */
export interface SubscriptionStats {
  /** MQTT messages received (a batched message holds several changes). */
  messages: number;
  /** Changes handed to the handler. */
  delivered: number;
  /** Changes dropped as repeats of a change already handled. */
  duplicates: number;
  /** Changes skipped because their op is not in `ops`. */
  skipped: number;
  /** Changes whose handler threw. */
  failed: number;
  /** Messages that were not tera-cdc DatabaseEvents (reported to onError and acknowledged). */
  undecodable: number;
  /** With a signingKey: messages without a signature, dropped (reported to onError and acknowledged). */
  unsigned: number;
  /** With a signingKey: messages whose signature did not verify, dropped. */
  badSignatures: number;
  /** Messages whose position was far ahead of the newest seen (see positionLimits), dropped. */
  refusedPositions: number;
  /**
   * Changes whose (lsn, seq) was seen before with other content: an alert (reported to onError),
   * not a replay. The first content stays; this one is dropped.
   */
  conflicts: number;
}

/** Counters at zero, for a new subscription. */
export function emptyStats(): SubscriptionStats {
  return { messages: 0, delivered: 0, duplicates: 0, skipped: 0, failed: 0, undecodable: 0, unsigned: 0, badSignatures: 0, refusedPositions: 0, conflicts: 0 };
}
