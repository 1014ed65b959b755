/** The gateway's counters, shown by GET /healthz (docs/gateway.md) and read by the tests. */
export interface GatewayStats {
  mqttConnected: boolean;
  clients: number;
  sessions: number;
  events: number;
  duplicates: number;
  undecodable: number;
  /** Broker messages dropped, with a signing key, for having no signature / a wrong one. */
  unsigned: number;
  badSignatures: number;
  /** Broker messages dropped for a position far ahead of the newest event. */
  refusedPositions: number;
  /** Events at a position already held with other content: alerts (logged at error level). */
  conflicts: number;
  framesSent: number;
  /** Frames held right now for clients whose sockets are draining, over all clients (--max-held-frames). */
  heldFrames: number;
  /** Events whose frames were encoded (each once, shared by every client that gets it). */
  eventsEncoded: number;
  /** Groups of connected clients whose tokens the rules treat alike. */
  audiences: number;
  slowDisconnects: number;
  deadDisconnects: number;
  refusedTokens: number;
  resumes: number;
  /** Resumes without the session, from the position alone (a client from another instance). */
  positionResumes: number;
  resyncs: number;
}

export function newGatewayStats(): GatewayStats {
  return {
    mqttConnected: false,
    clients: 0,
    sessions: 0,
    events: 0,
    duplicates: 0,
    undecodable: 0,
    unsigned: 0,
    badSignatures: 0,
    refusedPositions: 0,
    conflicts: 0,
    framesSent: 0,
    heldFrames: 0,
    eventsEncoded: 0,
    audiences: 0,
    slowDisconnects: 0,
    deadDisconnects: 0,
    refusedTokens: 0,
    resumes: 0,
    positionResumes: 0,
    resyncs: 0,
  };
}
