/**
 * The gateway's limits when none is configured: the defaults of `tera-cdc gateway`'s flags and
 * what the embedded development gateway runs with, so the two cannot drift apart.
 */
export const GATEWAY_DEFAULTS = {
  ringEvents: 100_000,
  ringBytes: 67_108_864,
  maxClientBufferBytes: 4_194_304,
  pingIntervalMs: 10_000,
  maxKeysPerClient: 100_000,
  sessionTtlMs: 300_000,
  maxSessions: 10_000,
  maxRows: 100_000,
} as const;
