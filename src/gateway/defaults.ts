/**
 * The gateway's limits when none is configured: the defaults of `tera-cdc gateway`'s flags and
 * what the embedded development gateway runs with, so the two cannot drift apart.
 */
export const GATEWAY_DEFAULTS = {
  ringEvents: 100_000,
  // Bytes as GatewayEvent.bytes counts them (what the events, and the rows they replaced, keep in
  // memory): the ring and the rows together stay well inside the 128 MB heap bin/tera-cdc.js gives.
  ringBytes: 33_554_432,
  maxClientBufferBytes: 4_194_304,
  // A reference per frame per slow client, about 16 bytes of heap each: 16 MB at most.
  maxHeldFrames: 1_000_000,
  pingIntervalMs: 10_000,
  maxKeysPerClient: 100_000,
  sessionTtlMs: 300_000,
  maxSessions: 10_000,
  maxRows: 100_000,
  maxRowBytes: 33_554_432,
} as const;
