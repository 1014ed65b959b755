import { formatLsn } from "../lsn.js";
import type { Logger } from "../ops/log.js";
import type { TokenVerifier } from "./auth.js";
import { BrokerFeed } from "./broker-feed.js";
import { Connections } from "./connection.js";
import { GATEWAY_DEFAULTS } from "./defaults.js";
import { EventFrames } from "./event-frames.js";
import { FanOut } from "./fanout.js";
import { GatewayHttp } from "./http.js";
import { InitialRows } from "./initial-rows.js";
import { EventIntake } from "./intake.js";
import { SLOW_CLIENT_CHECK_MS } from "./outlet.js";
import { Requests } from "./requests.js";
import { Resumer } from "./resume.js";
import { EventRing } from "./ring.js";
import { RowStore } from "./rows.js";
import type { AccessRules } from "./rules.js";
import { SessionStore } from "./sessions.js";
import { SnapshotTracker } from "./snapshots.js";
import { type GatewayStats, newGatewayStats } from "./stats.js";
import type { WebAssets } from "./web.js";
import { checkWireSupport } from "./wire.js";

export interface GatewayOptions {
  readonly mqttUrl: string;
  readonly mqttUsername?: string;
  readonly mqttPassword?: string;
  readonly mqttCa?: Buffer;
  readonly host: string;
  /** 0 picks a free port (see `port` after start). */
  readonly port: number;
  readonly verifier: TokenVerifier;
  readonly rules: AccessRules;
  /** Models whose topics are subscribed on the broker. */
  readonly models: readonly string[];
  readonly ringEvents: number;
  readonly ringBytes: number;
  /** A client with more than this many bytes waiting in its socket is disconnected. */
  readonly maxClientBufferBytes: number;
  /** Frames held for clients whose sockets drain, over all clients, at most (default 1,000,000). */
  readonly maxHeldFrames?: number;
  readonly pingIntervalMs: number;
  /** Object keys remembered per client for delete decisions; overflow means resync. */
  readonly maxKeysPerClient: number;
  /** How long a disconnected client's session (its key memory) is kept for resume. */
  readonly sessionTtlMs: number;
  readonly maxSessions: number;
  /**
   * The live page. A promise so that callers start bundling it and the broker connection at once:
   * the connect (and its timeout, and the exit on a 3.1.1 broker) never waits on the bundler, which
   * on a loaded machine took longer than the connect itself (issue 16). Awaited before listening.
   */
  readonly web?: WebAssets | Promise<WebAssets>;
  readonly logger: Logger;
  /** When given, only broker messages whose `sig` verifies are taken (src/messages/signature.ts). */
  readonly signingKey?: Uint8Array;
  /** How far ahead of the newest event one may be (see PositionGuard); default 1 TiB + 1 GiB/s. */
  readonly positionLimits?: { readonly leadBytes: bigint; readonly bytesPerSecond: bigint };
  /** Current rows kept over all models, for clients that subscribe with "rows": true (default 100,000). */
  readonly maxRows?: number;
  /** Bytes of current rows kept over all models (GatewayEvent.bytes), at most. */
  readonly maxRowBytes?: number;
  /**
   * Ask the tera-cdc of this module name (RPC, module/<name>/rpc) for a snapshot of every served
   * model once subscribed, so that the current rows are complete and not only those changed since
   * the gateway started. Needs a broker identity allowed to publish RPC requests.
   */
  readonly snapshotOnStart?: { readonly moduleName: string };
}

/**
 * The WebSocket gateway (docs/gateway.md), the composition root of src/gateway/: subscribes to the
 * model topics on the broker (BrokerFeed), takes each event into the current rows and a bounded
 * ring (EventIntake), and forwards it to the connected clients whose token's rights allow it
 * (FanOut, Connections); owns the start, the timers and the stop.
 */
export class Gateway {
  readonly stats: GatewayStats = newGatewayStats();
  private readonly ring: EventRing;
  private readonly rows: RowStore;
  private readonly intake: EventIntake;
  private readonly snapshots: SnapshotTracker;
  private readonly feed: BrokerFeed;
  private readonly fanOut: FanOut;
  private readonly connections: Connections;
  private http: GatewayHttp | null = null;
  private pingTimer: NodeJS.Timeout | null = null;
  private stalledTimer: NodeJS.Timeout | null = null;
  private listeningPort = 0;

  constructor(private readonly options: GatewayOptions) {
    const o = options;
    const stats = this.stats;
    // The ring lets go of an event: the row it replaced (kept for rowsBefore) can go too.
    this.ring = new EventRing(o.ringEvents, o.ringBytes, (event) => this.rows.forget(event));
    this.rows = new RowStore(o.rules, o.maxRows ?? GATEWAY_DEFAULTS.maxRows, o.maxRowBytes ?? GATEWAY_DEFAULTS.maxRowBytes);
    this.intake = new EventIntake(o, this.ring, this.rows, stats);
    this.snapshots = new SnapshotTracker(o.models, o.snapshotOnStart?.moduleName, o.logger);
    this.feed = new BrokerFeed(o, {
      event: (topic, payload, properties) => {
        if (!this.intake.authentic(topic, payload, properties)) return;
        this.snapshots.noteEnd(properties);
        const accepted = this.intake.take(topic, payload, properties);
        if (accepted.length > 0) this.fanOut.deliver(accepted);
      },
      reply: (payload) => this.snapshots.replyReceived(payload),
      gap: () => {
        // The ring cannot vouch for continuity, and every client must rebuild its view.
        this.ring.markGap();
        this.rows.markGap();
        this.connections.resyncAll("the gateway lost its broker connection and may have missed events");
      },
    }, stats);
    const frames = new EventFrames(stats);
    this.fanOut = new FanOut(o.rules, frames, stats);
    const sessions = new SessionStore(o, stats);
    const newest = () => this.intake.newest;
    const newestInRing = () => this.ring.newest;
    const requests = new Requests(
      o.rules,
      o.models,
      new Resumer(o.rules, sessions, this.ring, this.rows, frames, newest, stats),
      new InitialRows(this.rows, frames, (model) => this.snapshots.partialReason(model), newest),
      newestInRing,
    );
    this.connections = new Connections(o, stats, sessions, this.fanOut, requests, newestInRing);
  }

  get port(): number {
    return this.listeningPort;
  }

  async start(): Promise<void> {
    const o = this.options;
    checkWireSupport();
    // A bundling failure must not surface as an unhandled rejection while the connect is awaited.
    const web = Promise.resolve(o.web);
    web.catch(() => {});
    await this.feed.connect();
    await this.snapshots.request(this.feed);
    this.http = new GatewayHttp(o, await web, {
      health: () => this.health(),
      connected: (socket, claims, address) => this.connections.accept(socket, claims, address),
    }, this.stats);
    this.listeningPort = await this.http.listen();
    this.pingTimer = setInterval(() => this.connections.tick(), o.pingIntervalMs);
    this.stalledTimer = setInterval(() => this.connections.checkStalled(), SLOW_CLIENT_CHECK_MS);
    o.logger.info({ host: o.host, port: this.listeningPort, models: o.models, algorithms: o.verifier.algorithms }, "gateway listening");
  }

  async stop(): Promise<void> {
    if (this.pingTimer) clearInterval(this.pingTimer);
    if (this.stalledTimer) clearInterval(this.stalledTimer);
    this.fanOut.stop();
    this.connections.terminateAll();
    await this.http?.close();
    await this.feed.stop();
  }

  /** GET /healthz: the counters and the ring; healthy while connected to the broker. */
  private health(): { healthy: boolean; body: object } {
    const newest = this.ring.newest;
    const body = {
      ...this.stats,
      ring: { events: this.ring.size, bytes: this.ring.totalBytes, newest: newest ? { lsn: formatLsn(newest.lsn), seq: newest.seq } : null },
    };
    return { healthy: this.stats.mqttConnected, body };
  }
}
