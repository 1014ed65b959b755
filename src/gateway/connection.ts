import type { WebSocket } from "ws";
import type { Logger } from "../ops/log.js";
import { Client } from "./client.js";
import { GATEWAY_DEFAULTS } from "./defaults.js";
import type { GatewayEvent } from "./events.js";
import type { FanOut } from "./fanout.js";
import { PROTOCOL_VERSION, positionFrame } from "./frames.js";
import { HeldFrames, Outlet, type OutletPolicy } from "./outlet.js";
import type { Requests } from "./requests.js";
import { type AccessRules, type Claims, visibleModels } from "./rules.js";
import type { SessionStore } from "./sessions.js";
import type { GatewayStats } from "./stats.js";
import { ClientView } from "./view.js";

/** WebSocket close codes of the gateway (4000-4999 are the application's). */
export const CLOSE_CODES = { tokenExpired: 4001, tooSlow: 4008, resyncOverflow: 4009 } as const;

export interface ConnectionSettings {
  readonly rules: AccessRules;
  readonly maxKeysPerClient: number;
  readonly maxClientBufferBytes: number;
  /** Frames held for draining clients over all of them (HeldFrames); default GATEWAY_DEFAULTS.maxHeldFrames. */
  readonly maxHeldFrames?: number;
  readonly pingIntervalMs: number;
  readonly logger: Logger;
}

/**
 * The connected clients, from the accepted upgrade to the close: each one's session, audience and
 * outlet, its hello, its token's expiry, its requests handed to Requests, and the periodic checks
 * (ping liveness with the position frame, stalled outlets).
 */
export class Connections {
  private readonly clients = new Set<Client>();
  private readonly outletPolicy: OutletPolicy;

  constructor(
    private readonly settings: ConnectionSettings,
    private readonly stats: GatewayStats,
    private readonly sessions: SessionStore,
    private readonly fanOut: FanOut,
    private readonly requests: Requests,
    /** The newest event in the ring, for the hello and position frames. */
    private readonly newestInRing: () => GatewayEvent | undefined,
  ) {
    this.outletPolicy = { maxClientBufferBytes: settings.maxClientBufferBytes, held: new HeldFrames(settings.maxHeldFrames ?? GATEWAY_DEFAULTS.maxHeldFrames, stats), stats, logger: settings.logger };
  }

  /** A WebSocket whose token was verified (claims). */
  accept(socket: WebSocket, claims: Claims, address: string): void {
    const { rules, logger } = this.settings;
    const session = this.sessions.open(claims, new ClientView(rules, claims, this.settings.maxKeysPerClient), socket);
    const outlet = new Outlet(socket, this.outletPolicy, { client: address, subject: session.subject });
    const client = new Client(socket, session, outlet, address, this.stats);
    const leave = this.fanOut.join(client, claims);
    this.clients.add(client);
    this.stats.clients = this.clients.size;
    let expiry: NodeJS.Timeout | null = null;
    if (typeof claims.exp === "number") {
      const ms = Math.min(claims.exp * 1000 - Date.now(), 2_147_483_647);
      expiry = setTimeout(() => socket.close(CLOSE_CODES.tokenExpired, "token expired"), Math.max(ms, 0));
    }
    socket.on("pong", () => (client.alive = true));
    socket.on("message", (data, isBinary) => {
      if (isBinary) return client.sendError("binary frames are not requests: send JSON text frames");
      this.requests.answer(client, data.toString());
    });
    socket.on("close", () => {
      this.clients.delete(client);
      leave();
      this.stats.clients = this.clients.size;
      if (expiry) clearTimeout(expiry);
      this.sessions.detach(session, socket);
    });
    socket.on("error", (error) => logger.debug({ client: address }, `socket error: ${error.message}`));
    const keys = Object.fromEntries(visibleModels(rules, claims).map((m) => [m, rules.models.get(m)!.keys]));
    const newest = this.newestInRing();
    socket.send(
      JSON.stringify({
        type: "hello",
        protocol: PROTOCOL_VERSION,
        session: session.id,
        subject: session.subject,
        models: keys,
        pingIntervalMs: this.settings.pingIntervalMs,
        position: newest ? { lsn: newest.lsnText, seq: newest.seq } : null,
      }),
    );
    // The session id is a bearer credential for resuming: never logged.
    logger.info({ client: address, subject: session.subject }, "client connected");
  }

  /** Every ping interval: drop clients that did not answer the last ping, ping the rest, expire sessions. */
  tick(): void {
    const position = positionFrame(this.newestInRing());
    for (const client of this.clients) {
      if (!client.alive) {
        this.stats.deadDisconnects++;
        this.settings.logger.info({ client: client.address, subject: client.session.subject }, "client did not answer the ping: disconnected");
        client.socket.terminate();
        continue;
      }
      client.alive = false;
      client.socket.ping();
      if (position && client.skipThrough === null && client.outlet.backlog <= this.settings.maxClientBufferBytes) client.sendText(position);
    }
    this.sessions.expire();
  }

  /** Drops the clients whose outlet has stalled (Outlet.checkStalled). */
  checkStalled(): void {
    const now = Date.now();
    for (const client of this.clients) client.outlet.checkStalled(now);
  }

  /** Every client must drop what it shows (the gateway can no longer vouch for it). */
  resyncAll(reason: string): void {
    for (const client of this.clients) client.resync(reason);
  }

  terminateAll(): void {
    for (const client of this.clients) client.socket.terminate();
  }
}
