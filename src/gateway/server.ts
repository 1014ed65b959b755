import { randomUUID } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { performance } from "node:perf_hooks";
import type { Duplex } from "node:stream";
import type { MqttClient } from "mqtt";
import { classifyConnectError, openClient, RECONNECT_STEADY_MS } from "../mqtt/connect.js";
import { WebSocket, WebSocketServer } from "ws";
import { databaseEventTopic, moduleRpcTopic, toMqttTopic } from "../messages/index.js";
import { RpcCaller, type RpcReply, stringValue } from "../rpc/client.js";
import { ConfigError } from "../errors.js";
import type { Logger } from "../ops/log.js";
import { formatLsn, parseLsn } from "../lsn.js";
import { DEFAULT_POSITION_LIMITS, PositionGuard } from "../client/dedupe.js";
import { verify } from "../messages/signature.js";
import { SUBPROTOCOL, type TokenVerifier, tokenOfRequest, tokenRefusal } from "./auth.js";
import { GATEWAY_DEFAULTS } from "./defaults.js";
import { comparePositions, eventsFromMessage, type GatewayEvent } from "./events.js";
import { eventBinary, eventMeta, PROTOCOL_VERSION, parseClientRequest } from "./frames.js";
import { EventRing, type Position } from "./ring.js";
import { RowStore } from "./rows.js";
import { type AccessRules, audienceOf, type Claims, canSeeModel, claimsRead, objectKey, visibleModels } from "./rules.js";
import { ClientView, type Decision, verdictOf } from "./view.js";
import { checkWireSupport, type Frame, frameBinary, frameText, joinFrames, onceDrained, writeFrames } from "./wire.js";
import type { WebAssets } from "./web.js";

/**
 * The broker refused MQTT 5: it speaks 3.1.1 only (aedes, the embedded fallback). The gateway needs
 * each event's position (lsn, seq user properties) to resume clients and to tell which changes the
 * current rows already hold, so it stops at once (exit 2) instead of retrying.
 */
/** How long the gateway waits for tera-cdc to answer a snapshot request (--snapshot-on-start). */
const SNAPSHOT_REPLY_TIMEOUT_MS = 60_000;
const MQTT5_NEEDED =
  "setting mqtt-url: the broker speaks MQTT 3.1.1 only, and the gateway needs MQTT 5 (each event's lsn and seq, as user properties, for resume and for consistent initial rows): use an MQTT 5 broker such as Mosquitto 2 (npm start embeds one when /usr/sbin/mosquitto is installed)";

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

interface Session {
  readonly id: string;
  /** The token's string `sub` ("" when it has none: shown, never matched). */
  readonly subject: string;
  /**
   * Who may resume this session: the token's (iss, sub), both as strings; null when `sub` is not a
   * string (a number, absent): such a session can never be resumed, since two tokens with numeric
   * subjects would otherwise look alike.
   */
  readonly owner: string | null;
  view: ClientView;
  socket: WebSocket | null;
  detachedAt: number;
}

interface Client {
  readonly socket: WebSocket;
  readonly session: Session;
  readonly audience: Audience;
  readonly address: string;
  alive: boolean;
  expiry: NodeJS.Timeout | null;
  /** Send buffer at the last slow-client check, and since when it has been over the limit without draining. */
  lastBuffered: number;
  stalledSince: number | null;
  /**
   * Resumed at a position this instance had not reached: events up to it update the client's
   * memory but are not sent (it has them), and no position frame is sent before it.
   */
  skipThrough: Position | null;
  /**
   * Frames held while the client's TCP socket drains (null: none held): a slow client's backlog as
   * references to shared frames, written in one go once it drains.
   */
  held: Frame[] | null;
  heldBytes: number;
  /** A subscribe with `after` was answered: a connection resumes once (it costs a walk of the ring and the rows). */
  resumeAsked: boolean;
}

/**
 * The connected clients whose tokens the rules cannot tell apart (same values of every claim the
 * rules read): each event's rules are evaluated once for all of them.
 */
interface Audience {
  readonly key: string;
  readonly claims: Claims;
  readonly clients: Set<Client>;
}

/** Sent before the event that overflowed a client's key memory (ClientView). */
const OVERFLOW_RESYNC = JSON.stringify({ type: "resync", reason: "the client was shown more objects than the gateway remembers per client" });

/**
 * A client is too slow when its send buffer stays over --max-client-buffer without draining for
 * this long. A burst from the broker fills even a fast client's buffer for a moment; only one that
 * makes no progress is dropped. Past HARD_CAP times the limit it is dropped at once, whatever the
 * time: the bound on what the gateway holds for one client.
 */
const SLOW_CLIENT_GRACE_MS = 2000;
/**
 * The least time between the end of one fan-out flush and the next (see flushSoon); the gap also
 * grows to the last flush's own duration, at most MAX_FLUSH_GAP_MS.
 */
const FLUSH_INTERVAL_MS = 5;
const MAX_FLUSH_GAP_MS = 25;
const SLOW_CLIENT_CHECK_MS = 500;
const HARD_CAP = 16;

/** WebSocket close codes of the gateway (4000-4999 are the application's). */
export const CLOSE_CODES = { tokenExpired: 4001, tooSlow: 4008, resyncOverflow: 4009 } as const;

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

/**
 * The WebSocket gateway: subscribes to the model topics on the broker, keeps recent events in a
 * bounded ring, and forwards each event to the connected clients whose token's rights allow it.
 */
export class Gateway {
  private http: Server | null = null;
  private wss: WebSocketServer | null = null;
  private mqtt: MqttClient | null = null;
  private readonly rowStore: RowStore;
  private readonly clients = new Set<Client>();
  private readonly sessions = new Map<string, Session>();
  private readonly ring: EventRing;
  private readonly audiences = new Map<string, Audience>();
  private readonly claimNames: readonly string[];
  /** Each event's frames (meta text, binary), encoded once; apart for the initial rows, whose meta differs. */
  private readonly liveFrames = new WeakMap<GatewayEvent, Frame>();
  private readonly initialFrames = new WeakMap<GatewayEvent, Frame>();
  private readonly overflowResync = frameText(OVERFLOW_RESYNC);
  private pingTimer: NodeJS.Timeout | null = null;
  private slowTimer: NodeJS.Timeout | null = null;
  private mqttEverConnected = false;
  private stopping = false;
  /** Newest event taken from the broker (kept apart from the ring, which a gap empties). */
  private lastPosition: { lsn: bigint; seq: number } | null = null;
  private listeningPort = 0;
  /** Snapshot requests sent (request id -> model), the snapshots they started (snapshot id -> model), and the models one of them has finished. */
  /** Matches replies to the gateway's snapshot requests (--snapshot-on-start). */
  private rpcReplies: RpcCaller | null = null;
  private readonly ownSnapshots = new Map<string, string>();
  /** Ids of snapshots whose end marker came (the reply, on another topic, may come after it); the last 100. */
  private readonly endedSnapshots = new Set<string>();
  private readonly snapshotDone = new Set<string>();
  private web: WebAssets | undefined;
  readonly stats: GatewayStats = {
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
    eventsEncoded: 0,
    audiences: 0,
    slowDisconnects: 0,
    deadDisconnects: 0,
    refusedTokens: 0,
    resumes: 0,
    positionResumes: 0,
    resyncs: 0,
  };

  private readonly guard: PositionGuard;

  constructor(private readonly options: GatewayOptions) {
    this.ring = new EventRing(options.ringEvents, options.ringBytes, (event) => this.rowStore.forget(event));
    this.guard = new PositionGuard(options.positionLimits ?? DEFAULT_POSITION_LIMITS);
    this.rowStore = new RowStore(options.rules, options.maxRows ?? GATEWAY_DEFAULTS.maxRows, options.maxRowBytes ?? GATEWAY_DEFAULTS.maxRowBytes);
    this.claimNames = claimsRead(options.rules);
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
    await this.connectBroker();
    this.web = await web;
    this.wss = new WebSocketServer({
      noServer: true,
      // Browsers send the token as a second subprotocol; only ours is ever echoed back.
      handleProtocols: (protocols) => (protocols.has(SUBPROTOCOL) ? SUBPROTOCOL : false),
      maxPayload: 64 * 1024,
    });
    this.http = createServer((req, res) => this.serveHttp(req, res));
    this.http.on("upgrade", (req, socket, head) => void this.upgrade(req, socket, head));
    await new Promise<void>((resolve, reject) => {
      this.http!.once("error", (error: Error & { code?: string }) => {
        // The user's to fix (another port, or stop what holds it): exit 2, like any bad setting.
        if (error.code === "EADDRINUSE") reject(new ConfigError(`setting port: ${o.host}:${o.port} is already in use: choose another --port or stop what listens there`));
        else if (error.code === "EADDRNOTAVAIL" || error.code === "EACCES") reject(new ConfigError(`setting host/port: cannot listen on ${o.host}:${o.port} (${error.code}): give an address of this host and a port you may use`));
        else reject(error);
      });
      this.http!.listen(o.port, o.host, () => resolve());
    });
    const address = this.http.address();
    this.listeningPort = typeof address === "object" && address ? address.port : o.port;
    this.pingTimer = setInterval(() => this.tick(), o.pingIntervalMs);
    this.slowTimer = setInterval(() => this.checkSlowClients(), SLOW_CLIENT_CHECK_MS);
    o.logger.info({ host: o.host, port: this.listeningPort, models: o.models, algorithms: o.verifier.algorithms }, "gateway listening");
  }

  async stop(): Promise<void> {
    this.stopping = true;
    if (this.pingTimer) clearInterval(this.pingTimer);
    if (this.slowTimer) clearInterval(this.slowTimer);
    if (this.flushTimer) clearTimeout(this.flushTimer);
    for (const client of this.clients) client.socket.terminate();
    this.wss?.close();
    const closed = new Promise<void>((resolve) => (this.http ? this.http.close(() => resolve()) : resolve()));
    // Browsers keep idle HTTP connections open; close() alone would wait for them.
    this.http?.closeAllConnections();
    await closed;
    // Forced: the gateway only subscribes, and a client still reconnecting would otherwise hold the stop.
    await this.mqtt?.endAsync(true);
  }

  private async connectBroker(): Promise<void> {
    const o = this.options;
    const client = openClient(o.mqttUrl, { username: o.mqttUsername || undefined, password: o.mqttPassword || undefined, ca: o.mqttCa }, 5, {
      clean: true,
      clientId: `tera-cdc-gateway-${randomUUID().slice(0, 8)}`,
      reconnectPeriod: RECONNECT_STEADY_MS,
    });
    this.mqtt = client;
    const topics = o.models.map((model) => toMqttTopic(databaseEventTopic(model)));
    // Ready means subscribed, not merely connected: events published before the broker has the
    // subscription never reach a clean session, and clients would miss them without a resync.
    let subscribed: (error?: Error) => void = () => {};
    const firstSubscription = new Promise<void>((resolve, reject) => {
      subscribed = (error) => (error ? reject(error) : resolve());
    });
    firstSubscription.catch(() => {}); // awaited below; a later failure is only logged
    client.on("connect", () => {
      this.stats.mqttConnected = true;
      if (this.mqttEverConnected) {
        // A clean session: whatever was published while we were away never reaches us, so the
        // ring cannot vouch for continuity and every client must rebuild its view.
        o.logger.warn("broker connection restored; events published meanwhile are lost to the gateway: clients resync");
        this.ring.markGap();
        this.rowStore.markGap();
        for (const c of this.clients) this.sendResync(c, "the gateway lost its broker connection and may have missed events");
      }
      this.mqttEverConnected = true;
      client.subscribe(topics, { qos: 1 }, (error) => {
        if (error) o.logger.error(`subscribing to ${topics.join(", ")} failed: ${error.message}`);
        else o.logger.info({ topics }, "subscribed");
        subscribed(error ?? undefined);
      });
    });
    client.on("close", () => {
      if (this.stats.mqttConnected && !this.stopping) o.logger.warn("broker connection lost; reconnecting");
      this.stats.mqttConnected = false;
    });
    client.on("error", (error) => {
      // CONNACK "unacceptable protocol version" (3.1.1 code 1, MQTT 5 reason 132): retrying cannot help.
      if (!this.mqttEverConnected && classifyConnectError(error) === "unsupported-protocol") {
        // Forced and forgotten: a later stop() must not wait on a client that never connected.
        client.end(true);
        this.mqtt = null;
        subscribed(new ConfigError(MQTT5_NEEDED));
        return;
      }
      o.logger.warn(`broker: ${error.message}`);
    });
    // Under tera-cdc/cli/, the reply prefix tera-cdc answers by default (--rpc-reply-prefixes).
    const replyTopic = `tera-cdc/cli/gateway-${randomUUID().slice(0, 8)}/reply`;
    client.on("message", (topic, payload, packet) => {
      if (topic === replyTopic) return this.rpcReplies?.received(payload);
      this.onBrokerMessage(topic, payload, (packet.properties?.userProperties ?? {}) as Record<string, string | string[]>);
    });
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`broker ${o.mqttUrl.replace(/\/\/[^@]*@/, "//")} not reachable within 30 s: check --mqtt-url`)), 30_000);
    });
    try {
      await Promise.race([firstSubscription, timeout]);
    } finally {
      clearTimeout(timer);
    }
    if (o.snapshotOnStart) await this.requestSnapshots(client, o.snapshotOnStart.moduleName, replyTopic);
  }

  /** One snapshot request per served model (OpenTera RPC, as `tera-cdc snapshot` sends it); the rows arrive through the stream. */
  private async requestSnapshots(client: MqttClient, moduleName: string, replyTopic: string): Promise<void> {
    const rpcTopic = toMqttTopic(moduleRpcTopic(moduleName));
    const rpc = new RpcCaller({
      rpcTopic,
      replyTopic,
      timeoutMs: SNAPSHOT_REPLY_TIMEOUT_MS,
      unanswered: (method) => `no reply to ${method} on ${rpcTopic} within ${SNAPSHOT_REPLY_TIMEOUT_MS / 1000} s (is run started with --rpc and --module-name ${moduleName}?)`,
      publish: (topic, bytes) => client.publish(topic, Buffer.from(bytes), { qos: 1 }),
    });
    this.rpcReplies = rpc;
    await client.subscribeAsync(replyTopic, { qos: 1 });
    for (const model of this.options.models) {
      rpc.call("snapshot", [stringValue(model)]).then(
        (reply) => this.onSnapshotStarted(model, reply),
        (error: Error) => this.options.logger.warn(`${error.message}; current rows hold only what changed since the gateway started`),
      );
    }
    this.options.logger.info({ models: this.options.models, moduleName }, "asked tera-cdc for a snapshot of each model, for the current rows");
  }

  /** The reply to a snapshot request (parsed by RpcCaller: whoever may publish on the reply topic could have put anything there). */
  private onSnapshotStarted(model: string, reply: RpcReply): void {
    if (reply.error !== undefined) {
      this.options.logger.warn(`snapshot request refused: ${reply.error.slice(0, 200)}; current rows hold only what changed since the gateway started`);
      return;
    }
    // The snapshot method returns the new snapshot's id (src/cli/snapshot.ts reads it the same way).
    const id = reply.return_value;
    if (typeof id !== "number" || !Number.isSafeInteger(id)) {
      this.options.logger.warn({ model }, "the reply to a snapshot request holds no snapshot id: current rows hold only what changed since the gateway started");
      return;
    }
    this.options.logger.info({ snapshot: id, model }, "snapshot started");
    this.ownSnapshots.set(String(id), model);
    if (this.endedSnapshots.has(String(id))) this.markSnapshotDone(model);
  }

  private onBrokerMessage(topic: string, payload: Buffer, properties: Record<string, string | string[]>): void {
    if (this.options.signingKey !== undefined) {
      const verdict = verify(this.options.signingKey, topic, payload, properties);
      if (!verdict.ok) {
        if (verdict.reason === "unsigned") this.stats.unsigned++;
        else this.stats.badSignatures++;
        this.options.logger.warn({ topic }, `event dropped: ${verdict.reason === "unsigned" ? "not signed" : verdict.detail} (not from the tera-cdc holding the signing key)`);
        return;
      }
    }
    this.noteSnapshotEnd(properties);
    let events: GatewayEvent[];
    try {
      events = eventsFromMessage(payload, properties);
    } catch (error) {
      this.stats.undecodable++;
      this.options.logger.warn({ topic }, `event dropped: ${(error as Error).message}`);
      return;
    }
    const refusal = events.length > 0 ? this.guard.check(events[0]!.lsn) : null;
    if (refusal !== null) {
      this.stats.refusedPositions++;
      this.options.logger.warn({ topic, lsn: events[0]!.lsnText }, `event dropped: ${refusal}`);
      return;
    }
    const accepted: GatewayEvent[] = [];
    for (const event of events) {
      // tera-cdc resends from its confirmed LSN after a restart, and QoS 1 may duplicate: the
      // stream is in commit order, so anything not after the newest event is a repeat.
      if (this.lastPosition && comparePositions(event, this.lastPosition) <= 0) {
        const held = this.ring.find(event);
        if (held && !sameContent(held, event)) {
          this.stats.conflicts++;
          this.options.logger.error({ topic, lsn: event.lsnText, seq: event.seq, model: event.model }, "ALERT: a position came again with different content: kept the first, dropped this one; a second publisher is writing on the event topics");
        } else this.stats.duplicates++;
        continue;
      }
      this.lastPosition = event;
      // The row the event replaced stays in memory while the event is in the ring: the ring counts it.
      const replaced = this.rowStore.apply(event);
      this.ring.push(event, replaced?.bytes ?? 0);
      this.stats.events++;
      accepted.push(event);
    }
    if (accepted.length > 0) this.fanOut(accepted);
  }

  /**
   * Sends new events to every client that may see them. Per audience and event the rules are
   * evaluated once; per client what is left is its own key memory (ClientView) and one write of
   * frames encoded once per event (issue 18 point 5).
   */
  private fanOut(events: readonly GatewayEvent[]): void {
    const rules = this.options.rules;
    const keys = events.map((e) => objectKey(rules, e.model, e.object));
    for (const audience of this.audiences.values()) {
      const verdicts = events.map((e, i) => verdictOf(rules, audience.claims, e, keys[i]));
      for (const client of audience.clients) {
        const view = client.session.view;
        let out: Frame[] | null = null;
        for (let i = 0; i < events.length; i++) {
          const decision = view.decide(events[i]!, verdicts[i]);
          if (client.skipThrough !== null) {
            if (comparePositions(events[i]!, client.skipThrough) <= 0) continue;
            client.skipThrough = null;
          }
          if (decision.send !== null || decision.resyncFirst) this.addDecisionFrames((out ??= []), decision, false);
        }
        if (out) this.queueFrames(client, out);
      }
    }
    this.flushSoon();
  }

  /** Frames of the live fan-out waiting for the next flush, per client (in order). */
  private pending = new Map<Client, Frame[]>();
  private flushTimer: NodeJS.Timeout | null = null;
  /** When the next flush may start (the end of the last one plus the gap). */
  private nextFlushAt = Number.NEGATIVE_INFINITY;

  private queueFrames(client: Client, frames: Frame[]): void {
    const list = this.pending.get(client);
    if (list) for (const f of frames) list.push(f);
    else this.pending.set(client, frames);
  }

  /**
   * Writes the queued frames now, or, when the last flush ended less than a gap ago, then: at a low
   * rate every event goes out at once, and under load each client gets the events of a few
   * milliseconds in one write (one system call, which is most of the cost of a delivery) instead
   * of one write per event. The gap is the last flush's duration (5 to 25 ms): the busier the
   * gateway, the more events each write carries, so at most about half its time goes to writing.
   */
  private flushSoon(): void {
    if (this.flushTimer) return;
    const wait = this.nextFlushAt - performance.now();
    if (wait <= 0) this.flush();
    else {
      this.flushTimer = setTimeout(() => {
        this.flushTimer = null;
        this.flush();
      }, wait);
    }
  }

  private flush(): void {
    const started = performance.now();
    const pending = this.pending;
    this.pending = new Map();
    for (const [client, frames] of pending) this.writeNow(client, frames);
    const ended = performance.now();
    this.nextFlushAt = ended + Math.min(MAX_FLUSH_GAP_MS, Math.max(FLUSH_INTERVAL_MS, ended - started));
  }

  /** Anything sent to a client outside the fan-out goes after what the fan-out queued for it. */
  private flushClient(client: Client): void {
    const frames = this.pending.get(client);
    if (!frames) return;
    this.pending.delete(client);
    this.writeNow(client, frames);
  }

  /**
   * The end marker of a snapshot this gateway asked for (docs/snapshots.md): from then on its
   * rows of that model are every current row, not only those changed since it started.
   */
  private noteSnapshotEnd(properties: Record<string, string | string[]>): void {
    const text = (name: string) => {
      const v = properties[name];
      return Array.isArray(v) ? v[0] : v;
    };
    if (text("snapshot-marker") !== "end") return;
    const id = text("snapshot") ?? "";
    const model = this.ownSnapshots.get(id);
    if (model !== undefined) return this.markSnapshotDone(model);
    // Replies and markers travel on different topics: the reply naming this id may still come.
    this.endedSnapshots.add(id);
    if (this.endedSnapshots.size > 100) this.endedSnapshots.delete(this.endedSnapshots.values().next().value!);
  }

  private markSnapshotDone(model: string): void {
    this.snapshotDone.add(model);
    this.options.logger.info({ model }, "snapshot done: the current rows of the model are complete");
  }

  /**
   * Why the rows held for a model may not be all of its rows, or null when they are: without a
   * snapshot the gateway knows only the rows changed since it started (issue 16: outside the
   * embedded default, `run` answers snapshot requests only with --rpc).
   */
  private partialRows(model: string): string | null {
    if (this.snapshotDone.has(model)) return null;
    if (this.options.snapshotOnStart) return "the gateway's snapshot of this model is still running: the other current rows arrive as it reads them";
    return "these are the rows changed since the gateway started: for every current row run tera-cdc with --rpc and the gateway with --snapshot-on-start";
  }

  private disconnectSlow(client: Client): void {
    this.stats.slowDisconnects++;
    this.options.logger.warn({ client: client.address, subject: client.session.subject, bufferedBytes: this.backlogOf(client) }, "client too slow: disconnected");
    // close() would queue its frame behind the backlog; terminate frees the memory now.
    client.socket.terminate();
  }

  /** Drops the clients whose send buffer has stayed over the limit without draining (SLOW_CLIENT_GRACE_MS). */
  private checkSlowClients(): void {
    const now = Date.now();
    for (const client of this.clients) {
      const buffered = this.backlogOf(client);
      if (buffered > this.options.maxClientBufferBytes && buffered >= client.lastBuffered) {
        client.stalledSince ??= now;
        if (now - client.stalledSince >= SLOW_CLIENT_GRACE_MS) this.disconnectSlow(client);
      } else {
        client.stalledSince = null;
      }
      client.lastBuffered = buffered;
    }
  }

  /** Appends one decision's frames: the resync before it, if any, and the event's two frames. */
  private addDecisionFrames(out: Frame[], decision: Decision, initial: boolean): void {
    if (decision.resyncFirst) {
      this.stats.resyncs++;
      out.push(this.overflowResync);
    }
    const event = decision.send;
    if (!event) return;
    // An event is always sent with the same leftView (a keys-only delete is an event of its own).
    const cache = initial ? this.initialFrames : this.liveFrames;
    let frames = cache.get(event);
    if (!frames) {
      frames = joinFrames([frameText(eventMeta(event, decision.leftView, initial)), frameBinary(eventBinary(event))]);
      cache.set(event, frames);
      this.stats.eventsEncoded++;
    }
    out.push(frames);
  }

  /** Sends frames to one client now, after any it has queued. */
  private sendFrames(client: Client, frames: readonly Frame[]): void {
    this.flushClient(client);
    this.writeNow(client, frames);
  }

  /** Sends one text frame (a control frame) to one client now, after any it has queued or held. */
  private sendText(client: Client, text: string): void {
    this.sendFrames(client, [frameText(text)]);
  }

  /** Writes frames to one client in one write, or disconnects it past the hard cap of its send buffer. */
  private writeNow(client: Client, frames: readonly Frame[]): void {
    const socket = client.socket;
    if (frames.length === 0 || socket.readyState !== WebSocket.OPEN) return;
    if (client.held) {
      for (const f of frames) {
        client.held.push(f);
        client.heldBytes += f.bytes.length;
      }
      if (this.backlogOf(client) > this.options.maxClientBufferBytes * HARD_CAP) this.disconnectSlow(client);
      return;
    }
    if (socket.bufferedAmount > this.options.maxClientBufferBytes * HARD_CAP) {
      this.disconnectSlow(client);
      return;
    }
    const needsDrain = writeFrames(socket, frames);
    for (const f of frames) this.stats.framesSent += f.messages.length;
    if (!needsDrain) return;
    client.held = [];
    client.heldBytes = 0;
    onceDrained(socket, () => {
      const held = client.held ?? [];
      client.held = null;
      client.heldBytes = 0;
      this.writeNow(client, held);
    });
  }

  /** Bytes waiting for one client: in its sockets and held for it. */
  private backlogOf(client: Client): number {
    return client.socket.bufferedAmount + client.heldBytes;
  }

  private sendResync(client: Client, reason: string): void {
    this.stats.resyncs++;
    client.session.view.reset();
    this.sendText(client, JSON.stringify({ type: "resync", reason }));
  }

  private positionFrame(): string | null {
    const newest = this.ring.newest;
    return newest ? JSON.stringify({ type: "position", lsn: newest.lsnText, seq: newest.seq }) : null;
  }

  private async upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    const address = `${req.socket.remoteAddress}:${req.socket.remotePort}`;
    const refuse = (status: number, reason: string) => {
      this.stats.refusedTokens++;
      this.options.logger.info({ client: address }, `connection refused: ${reason}`);
      socket.end(`HTTP/1.1 ${status} ${status === 401 ? "Unauthorized" : "Not Found"}\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n${reason}\n`);
    };
    if (new URL(req.url ?? "/", "http://gateway").pathname !== "/ws") return refuse(404, "WebSocket endpoint is /ws");
    const token = tokenOfRequest(req.url, req.headers["sec-websocket-protocol"]);
    if (!token) return refuse(401, `no token: pass ?token=<jwt> or the subprotocols ${SUBPROTOCOL}, bearer.<jwt>`);
    let claims: Claims;
    try {
      claims = await this.options.verifier.verify(token);
    } catch (error) {
      return refuse(401, tokenRefusal(error));
    }
    this.wss!.handleUpgrade(req, socket, head, (ws) => this.onConnection(ws, claims, address));
  }

  private onConnection(socket: WebSocket, claims: Claims, address: string): void {
    const o = this.options;
    const subject = typeof claims.sub === "string" ? claims.sub : "";
    const owner = typeof claims.sub === "string" ? JSON.stringify([typeof claims.iss === "string" ? claims.iss : null, claims.sub]) : null;
    const session: Session = { id: randomUUID(), subject, owner, view: new ClientView(o.rules, claims, o.maxKeysPerClient), socket, detachedAt: 0 };
    this.addSession(session);
    const audienceKey = audienceOf(this.claimNames, claims);
    let audience = this.audiences.get(audienceKey);
    if (!audience) {
      audience = { key: audienceKey, claims, clients: new Set() };
      this.audiences.set(audienceKey, audience);
    }
    const client: Client = { socket, session, audience, address, alive: true, expiry: null, lastBuffered: 0, stalledSince: null, skipThrough: null, held: null, heldBytes: 0, resumeAsked: false };
    this.clients.add(client);
    audience.clients.add(client);
    this.stats.clients = this.clients.size;
    this.stats.audiences = this.audiences.size;
    if (typeof claims.exp === "number") {
      const ms = Math.min(claims.exp * 1000 - Date.now(), 2_147_483_647);
      client.expiry = setTimeout(() => socket.close(CLOSE_CODES.tokenExpired, "token expired"), Math.max(ms, 0));
    }
    socket.on("pong", () => (client.alive = true));
    socket.on("message", (data, isBinary) => {
      if (isBinary) return this.sendError(client, "binary frames are not requests: send JSON text frames");
      this.onRequest(client, data.toString());
    });
    socket.on("close", () => {
      this.clients.delete(client);
      client.audience.clients.delete(client);
      if (client.audience.clients.size === 0) this.audiences.delete(client.audience.key);
      this.stats.clients = this.clients.size;
      this.stats.audiences = this.audiences.size;
      if (client.expiry) clearTimeout(client.expiry);
      if (session.socket === socket) {
        session.socket = null;
        session.detachedAt = Date.now();
      }
    });
    socket.on("error", (error) => o.logger.debug({ client: address }, `socket error: ${error.message}`));
    const keys = Object.fromEntries(visibleModels(o.rules, claims).map((m) => [m, o.rules.models.get(m)!.keys]));
    const newest = this.ring.newest;
    socket.send(
      JSON.stringify({
        type: "hello",
        protocol: PROTOCOL_VERSION,
        session: session.id,
        subject,
        models: keys,
        pingIntervalMs: o.pingIntervalMs,
        position: newest ? { lsn: newest.lsnText, seq: newest.seq } : null,
      }),
    );
    // The session id is a bearer credential for resuming: never logged.
    o.logger.info({ client: address, subject }, "client connected");
  }

  private onRequest(client: Client, text: string): void {
    const request = parseClientRequest(text);
    if (typeof request === "string") return this.sendError(client, request);
    const view = client.session.view;
    if (request.type === "unsubscribe") {
      for (const m of request.models) view.models.delete(m);
      this.sendText(client, JSON.stringify({ type: "unsubscribed", models: request.models }));
      return;
    }
    const denied = request.models.filter((m) => !canSeeModel(this.options.rules, view.claims, m));
    if (denied.length > 0) return this.sendError(client, `not allowed to see model ${denied.join(", ")}: the token's claims do not meet its rules`);
    const unknown = request.models.filter((m) => !this.options.models.includes(m));
    if (unknown.length > 0) return this.sendError(client, `model ${unknown.join(", ")} is not served by this gateway`);
    let resumed: number | null = null;
    if (request.after) {
      if (client.resumeAsked) return this.sendError(client, "after: a connection resumes once, in its first subscribe with after; reconnect to resume again");
      client.resumeAsked = true;
      let after: Position;
      let origin: Position | undefined;
      try {
        after = { lsn: parseLsn(request.after.lsn), seq: request.after.seq };
        if (request.origin) origin = { lsn: parseLsn(request.origin.lsn), seq: request.origin.seq };
      } catch (error) {
        return this.sendError(client, `after/origin lsn: ${(error as Error).message}`);
      }
      const earlier = request.session ? this.sessions.get(request.session) : undefined;
      const missed = this.ring.after(after);
      const reason =
        earlier === undefined || earlier === client.session
          ? "unknown session: the gateway restarted or forgot it"
          : client.session.owner === null
            ? "the token has no string sub claim: a session can be resumed only by a token with the same iss and sub"
            : earlier.owner !== client.session.owner
              ? "the session belongs to another subject"
            : missed === null
              ? `position ${request.after.lsn}/${request.after.seq} is no longer held by the gateway`
              : null;
      for (const m of request.models) view.models.add(m);
      if (reason === null && earlier && missed) {
        if (earlier.socket) earlier.socket.terminate();
        view.adoptMemory(earlier.view);
        this.sessions.delete(earlier.id);
        this.stats.resumes++;
        resumed = this.replay(client, missed, request.models);
      } else {
        // Not this instance's session (another instance behind the load balancer, or a restart):
        // resume from the position itself when this instance can rebuild what the client holds.
        const fromPosition = origin ? this.resumeFromPosition(client, request.models, after, origin) : "no origin: the subscribe names no origin, so the rows the client holds cannot be rebuilt";
        if (typeof fromPosition === "number") {
          this.stats.positionResumes++;
          resumed = fromPosition;
        } else {
          this.sendResync(client, reason === "unknown session: the gateway restarted or forgot it" ? `${reason}, and ${fromPosition}` : (reason ?? fromPosition));
        }
      }
    } else {
      for (const m of request.models) view.models.add(m);
    }
    // Not after a resume: the client kept its rows and got what it missed.
    if (request.rows && resumed === null) this.sendRows(client, request.models);
    if (client.socket.readyState !== WebSocket.OPEN) return;
    this.sendText(client, JSON.stringify({ type: "subscribed", models: [...view.models], resumed }));
    const position = this.positionFrame();
    if (position && client.skipThrough === null) this.sendText(client, position);
  }

  /** Sends the events after a resume position under the client's view; returns how many of them it got. */
  private replay(client: Client, events: readonly GatewayEvent[], models: readonly string[]): number {
    let count = 0;
    const out: Frame[] = [];
    for (const event of events) {
      const decision = client.session.view.decide(event);
      if (decision.send && models.includes(decision.send.model)) count++;
      if (decision.send !== null || decision.resyncFirst) this.addDecisionFrames(out, decision, false);
    }
    this.sendFrames(client, out);
    return count;
  }

  /**
   * Resume without the session (issue 18 point 6): every instance takes the same stream, so the
   * client's last position means the same here. The client's key memory is rebuilt as the rows
   * of its models visible to its own claims as they were at that position (RowStore.rowsBefore),
   * then what it missed is replayed. Sound when this instance knows every row the client may hold:
   * it has tracked rows since no later than the client's origin. When this instance is behind the
   * position (it has not yet taken what the client has), the client's memory is this instance's
   * rows now, and the events up to the position are applied to it without being sent.
   * A string is the reason it cannot, for the resync.
   */
  private resumeFromPosition(client: Client, models: readonly string[], after: Position, origin: Position): number | string {
    const tracked = this.rowStore.origin;
    if (tracked === null || comparePositions(tracked, origin) > 0) {
      return `this gateway has known rows only since ${tracked ? `${formatLsn(tracked.lsn)}/${tracked.seq}` : "now"}, after the client's origin ${formatLsn(origin.lsn)}/${origin.seq}`;
    }
    const ahead = this.lastPosition !== null && comparePositions(after, this.lastPosition) > 0;
    const missed = ahead ? [] : this.ring.after(after);
    if (missed === null) return `position ${formatLsn(after.lsn)}/${after.seq} is no longer held by the gateway`;
    const view = client.session.view;
    const rules = this.options.rules;
    for (const model of models) {
      const rows = this.rowStore.rowsBefore(model, missed);
      if (rows === null) return `the rows of ${model} at that position are not known here (a truncate since, or more rows than --max-rows)`;
      for (const row of rows) {
        const key = objectKey(rules, model, row.object);
        if (key === undefined || !verdictOf(rules, view.claims, row, key).row) continue;
        if (!view.markShown(model, key)) return "the client holds more objects than the gateway remembers per client";
      }
    }
    if (ahead) client.skipThrough = after;
    return this.replay(client, missed, models);
  }

  /**
   * The current rows of each model, under the client's row rules, each as the event that made it
   * so (marked "initial"), after a "rows" frame with the position they are valid at. Synchronous,
   * so no event slips between the rows and the live stream that follows them.
   */
  private sendRows(client: Client, models: readonly string[]): void {
    const position = this.lastPosition ? { lsn: formatLsn(this.lastPosition.lsn), seq: this.lastPosition.seq } : null;
    // Every row sent changed at or after it: the client hands it back to resume on another instance.
    const tracked = this.rowStore.origin;
    const origin = tracked ? { lsn: formatLsn(tracked.lsn), seq: tracked.seq } : null;
    for (const model of models) {
      if (client.socket.readyState !== WebSocket.OPEN) return;
      const rows = this.rowStore.rowsOf(model);
      if (rows === null) {
        this.sendText(client, JSON.stringify({ type: "rows", model, position, origin, complete: false, reason: "the gateway holds more rows than --max-rows: only changes from now on" }));
        continue;
      }
      const partial = this.partialRows(model);
      const out: Frame[] = [frameText(JSON.stringify({ type: "rows", model, position, origin, complete: true, ...(partial ? { partial } : {}) }))];
      for (const event of rows) {
        const decision = client.session.view.decide(event);
        if (decision.send !== null || decision.resyncFirst) this.addDecisionFrames(out, decision, true);
      }
      this.sendFrames(client, out);
    }
  }

  private sendError(client: Client, message: string): void {
    this.sendText(client, JSON.stringify({ type: "error", message }));
  }

  private addSession(session: Session): void {
    this.sessions.set(session.id, session);
    if (this.sessions.size > this.options.maxSessions) {
      // Map order is insertion order: the first detached one is the oldest.
      for (const [id, s] of this.sessions) {
        if (s.socket === null) {
          this.sessions.delete(id);
          break;
        }
      }
    }
    this.stats.sessions = this.sessions.size;
  }

  /** Every ping interval: drop clients that did not answer the last ping, ping the rest, expire sessions. */
  private tick(): void {
    const position = this.positionFrame();
    for (const client of this.clients) {
      if (!client.alive) {
        this.stats.deadDisconnects++;
        this.options.logger.info({ client: client.address, subject: client.session.subject }, "client did not answer the ping: disconnected");
        client.socket.terminate();
        continue;
      }
      client.alive = false;
      client.socket.ping();
      if (position && client.skipThrough === null && this.backlogOf(client) <= this.options.maxClientBufferBytes) this.sendText(client, position);
    }
    const cutoff = Date.now() - this.options.sessionTtlMs;
    for (const [id, s] of this.sessions) if (s.socket === null && s.detachedAt < cutoff) this.sessions.delete(id);
    this.stats.sessions = this.sessions.size;
  }

  /** GET /auth with `Authorization: Bearer <jwt>`: 200 {"ok":true,"models":[...]} or 401 {"ok":false,"reason":"..."}. */
  private async answerAuth(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const header = req.headers.authorization ?? "";
    const token = /^Bearer (\S+)$/.exec(header)?.[1];
    const reply = (status: number, body: object) => {
      res.writeHead(status, { "content-type": "application/json", "cache-control": "no-store" });
      res.end(JSON.stringify(body));
    };
    if (!token) return reply(401, { ok: false, reason: "no token: send Authorization: Bearer <jwt>" });
    try {
      const claims = await this.options.verifier.verify(token);
      reply(200, { ok: true, models: visibleModels(this.options.rules, claims).filter((m) => this.options.models.includes(m)) });
    } catch (error) {
      reply(401, { ok: false, reason: tokenRefusal(error) });
    }
  }

  private serveHttp(req: IncomingMessage, res: ServerResponse): void {
    const path = new URL(req.url ?? "/", "http://gateway").pathname;
    if (path === "/healthz") {
      const newest = this.ring.newest;
      const body = {
        ...this.stats,
        ring: { events: this.ring.size, bytes: this.ring.totalBytes, newest: newest ? { lsn: formatLsn(newest.lsn), seq: newest.seq } : null },
      };
      res.writeHead(this.stats.mqttConnected ? 200 : 503, { "content-type": "application/json" });
      res.end(JSON.stringify(body));
      return;
    }
    if (path === "/auth") {
      // The page asks here why a token is refused: a browser cannot read a refused upgrade's reason.
      void this.answerAuth(req, res);
      return;
    }
    const asset = this.web?.get(path === "/" ? "/index.html" : path);
    if (req.method === "GET" && asset) {
      res.writeHead(200, { "content-type": asset.contentType, "cache-control": "no-cache" });
      res.end(asset.body);
      return;
    }
    res.writeHead(404, { "content-type": "text/plain" });
    res.end("not found: the live page is at /, the WebSocket at /ws, health at /healthz\n");
  }
}

/**
 * Whether a repeat says what the held event said (a true replay), position aside. Snapshot rows
 * restate rows as read at injection time: a replay may carry newer values, which is no conflict.
 */
function sameContent(a: GatewayEvent, b: GatewayEvent): boolean {
  if (a.snapshot !== undefined || b.snapshot !== undefined) return a.snapshot === b.snapshot;
  return a.model === b.model && a.type === b.type && a.op === b.op && a.objectValue === b.objectValue && a.commitTime === b.commitTime && a.table === b.table;
}
