import { randomUUID } from "node:crypto";
import type { WebSocket } from "ws";
import type { Claims } from "./rules.js";
import type { GatewayStats } from "./stats.js";
import type { ClientView } from "./view.js";

/** A client's key memory under an id it can resume with, kept a while after it disconnects. */
export interface Session {
  /** A bearer credential for resuming: never logged. */
  readonly id: string;
  /** The token's string `sub` ("" when it has none: shown, never matched). */
  readonly subject: string;
  /**
   * Who may resume this session: the token's (iss, sub), both as strings; null when `sub` is not a
   * string (a number, absent): such a session can never be resumed, since two tokens with numeric
   * subjects would otherwise look alike.
   */
  readonly owner: string | null;
  readonly view: ClientView;
  /** The connection using it; null once it disconnected (since detachedAt). */
  socket: WebSocket | null;
  detachedAt: number;
}

/**
 * The sessions a client can resume: bounded by --max-sessions (the oldest disconnected one goes
 * first) and by --session-ttl-ms after their connection ended.
 */
export class SessionStore {
  private readonly sessions = new Map<string, Session>();

  constructor(
    private readonly limits: { readonly maxSessions: number; readonly sessionTtlMs: number },
    private readonly stats: Pick<GatewayStats, "sessions">,
  ) {}

  /** A new session for a connection with these claims. */
  open(claims: Claims, view: ClientView, socket: WebSocket): Session {
    const subject = typeof claims.sub === "string" ? claims.sub : "";
    const owner = typeof claims.sub === "string" ? JSON.stringify([typeof claims.iss === "string" ? claims.iss : null, claims.sub]) : null;
    const session: Session = { id: randomUUID(), subject, owner, view, socket, detachedAt: 0 };
    this.sessions.set(session.id, session);
    if (this.sessions.size > this.limits.maxSessions) {
      // Map order is insertion order: the first detached one is the oldest.
      for (const [id, s] of this.sessions) {
        if (s.socket === null) {
          this.sessions.delete(id);
          break;
        }
      }
    }
    this.stats.sessions = this.sessions.size;
    return session;
  }

  get(id: string): Session | undefined {
    return this.sessions.get(id);
  }

  /** The session was resumed by another connection, which took its memory. */
  delete(session: Session): void {
    this.sessions.delete(session.id);
    this.stats.sessions = this.sessions.size;
  }

  /** The connection using the session ended: it can be resumed until the TTL has passed. */
  detach(session: Session, socket: WebSocket): void {
    if (session.socket !== socket) return;
    session.socket = null;
    session.detachedAt = Date.now();
  }

  /** Forgets the sessions disconnected for longer than the TTL. */
  expire(): void {
    const cutoff = Date.now() - this.limits.sessionTtlMs;
    for (const [id, s] of this.sessions) if (s.socket === null && s.detachedAt < cutoff) this.sessions.delete(id);
    this.stats.sessions = this.sessions.size;
  }
}
