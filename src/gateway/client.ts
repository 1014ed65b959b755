import { WebSocket } from "ws";
import type { Recipient } from "./fanout.js";
import type { Outlet } from "./outlet.js";
import type { Position } from "./ring.js";
import type { Session } from "./sessions.js";
import type { GatewayStats } from "./stats.js";
import type { ClientView } from "./view.js";
import { frameText } from "./wire.js";

/** One connected client: its session and key memory, its outlet, and the control frames sent to it. */
export class Client implements Recipient {
  readonly view: ClientView;
  /** Answered the last ping (see Connections.tick). */
  alive = true;
  skipThrough: Position | null = null;
  /** A subscribe with `after` was answered: a connection resumes once (it costs a walk of the ring and the rows). */
  resumeAsked = false;

  constructor(
    readonly socket: WebSocket,
    readonly session: Session,
    readonly outlet: Outlet,
    /** The peer's address and port, for logs. */
    readonly address: string,
    private readonly stats: Pick<GatewayStats, "resyncs">,
  ) {
    this.view = session.view;
  }

  get open(): boolean {
    return this.socket.readyState === WebSocket.OPEN;
  }

  /** Sends one text frame now, after any frames queued or held for the client. */
  sendText(text: string): void {
    this.outlet.send([frameText(text)]);
  }

  sendError(message: string): void {
    this.sendText(JSON.stringify({ type: "error", message }));
  }

  /** Tells the client to drop what it shows; its key memory starts afresh. */
  resync(reason: string): void {
    this.stats.resyncs++;
    this.view.reset();
    this.sendText(JSON.stringify({ type: "resync", reason }));
  }
}
