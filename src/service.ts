import { randomBytes } from "node:crypto";
import type { Server } from "node:http";
import pg from "pg";
import { TypeCatalog } from "./decode/types.js";
import { planRelation, type TableSettings } from "./model/plan.js";
import { ConfigError, tableSettingsFor } from "./config.js";
import { startHealthServer } from "./ops/health.js";
import { createMetrics } from "./ops/metrics.js";
import { type Logger, redactUrl } from "./ops/log.js";
import { Pipeline } from "./pipeline/pipeline.js";
import type { OversizeRule } from "./pipeline/publisher.js";
import { PipelineStats } from "./pipeline/stats.js";
import { MqttSink } from "./sinks/mqtt/sink.js";
import { RedisSink } from "./sinks/redis/sink.js";
import { CatalogReader } from "./source/catalog.js";
import { FatalError, isConnectionError } from "./errors.js";
import { readCredentials } from "./mqtt/connect.js";
import { formatLsn, type Lsn, parseLsn } from "./lsn.js";
import { type Query, withDatabase } from "./source/database.js";
import { chooseHost } from "./source/hosts.js";
import { OriginGuard } from "./source/origin.js";
import { ReplicationStream } from "./source/replication.js";
import { checkDecodingHost, prepareDatabase, slotHolder, type TableRef } from "./source/setup.js";
import { persistConfirmedPosition, slotConfirmedPosition } from "./source/slot-position.js";
import { DEFAULT_RPC_POLICY, type RpcPolicy } from "./rpc/dispatch.js";
import { SnapshotFeature } from "./snapshot/index.js";

export interface ServiceConfig {
  readonly databaseUrl: string;
  readonly mqttUrl: string;
  /** Publish to Redis (OpenTera's transport) instead of MQTT; RPC is then off (docs/opentera.md). */
  readonly redisUrl?: string;
  /** CA certificate for a rediss:// redisUrl signed by a private CA (--redis-ca). */
  readonly redisCa?: Buffer;
  readonly tables?: readonly TableRef[];
  readonly publication: string;
  readonly slot: string;
  readonly qos: 0 | 1 | 2;
  readonly healthPort?: number;
  /** Address of /healthz and /metrics; 127.0.0.1 when absent. */
  readonly healthHost?: string;
  readonly mqttUsername?: string;
  readonly mqttPassword?: string;
  readonly mqttCaFile?: string;
  readonly mqttCertFile?: string;
  readonly mqttKeyFile?: string;
  readonly mqttClientId?: string;
  readonly maxInFlight: number;
  readonly maxMessageBytes: number;
  readonly onOversize: OversizeRule;
  readonly deadLetterTopic: string;
  readonly batchEvents: number;
  readonly batchBytes: number;
  readonly standbyPollMs: number;
  readonly statusIntervalMs: number;
  /** Snapshots and RPC (src/snapshot, docs/snapshots.md, docs/security.md); absent: module tera-cdc, RPC off, no initial snapshot. */
  readonly moduleName?: string;
  readonly rpc?: boolean;
  readonly rpcPolicy?: RpcPolicy;
  readonly snapshotInitial?: boolean;
  readonly snapshotChunkSize?: number;
  readonly snapshotModels?: readonly string[];
  readonly snapshotMaxRunning?: number;
  readonly snapshotStatementTimeoutMs?: number;
  readonly tableSettings: Readonly<Record<string, TableSettings>>;
  /** Signs every published message (src/messages/signature.ts); needs an MQTT 5 broker. */
  readonly signingKey?: Uint8Array;
  /** Folder of the stream record (src/source/origin.ts). */
  readonly dataDir: string;
  /** Create a new slot even though the recorded one is gone or belongs to another server (logged). */
  readonly startAfresh?: boolean;
}

type State = "starting" | "standby" | "streaming" | "reconnecting" | "stopping" | "stopped";

const MAX_RECONNECT_DELAY_MS = 30_000;
/** How long a clean stop waits for the broker to acknowledge what is in flight. */
const STOP_DRAIN_MS = 10_000;
/** How often the stream record takes the confirmed position. */
const ORIGIN_SAVE_MS = 5_000;
/** How long closing the broker connections may take at exit. */
const CLOSE_WAIT_MS = 2_000;

/**
 * `tera-cdc run` as a long-lived service: checks and prepares the database, connects the broker,
 * waits as a standby while another instance holds the slot, streams, and reconnects after the
 * database or the replication connection goes away, resuming from the confirmed position.
 */
export class CdcService {
  readonly stats = new PipelineStats();
  private state: State = "starting";
  private readonly types = new TypeCatalog();
  private sink: MqttSink | RedisSink | null = null;
  private stream: ReplicationStream | null = null;
  private pipeline: Pipeline | null = null;
  /** Plain connection for catalog look-ups of the current stream (types, primary keys). */
  private catalogClient: pg.Client | null = null;
  private readonly stopped: Promise<"stop">;
  private signalStop: () => void = () => {};
  private health: Server | null = null;
  private stopRequested = false;
  private wake: (() => void) | null = null;
  private reconnects = 0;
  private readonly startedAt = Date.now();
  /** Snapshots and the RPC listener (src/snapshot); its observer sees the stream of every pipeline. */
  private snapshots: SnapshotFeature | null = null;
  /** Whether this run created the slot (then `--snapshot initial` snapshots every model). */
  private slotCreated = false;
  /** Whether a replication stream ever started: only then is there a confirmed position to persist at a stop. */
  private streamed = false;
  /** Where this slot's stream came from: refuses a silent new slot (src/source/origin.ts). */
  private origin: OriginGuard | null = null;
  /** The one host of --database-url in use (src/source/hosts.ts); chosen again before each connection cycle. */
  private databaseUrl = "";

  constructor(
    private readonly config: ServiceConfig,
    private readonly logger: Logger,
  ) {
    this.stopped = new Promise((resolve) => {
      this.signalStop = () => resolve("stop");
    });
  }

  /** A table's settings from the configuration (none: publish by the defaults). */
  private readonly settingsOf = (schema: string, table: string): TableSettings => tableSettingsFor(this.config.tableSettings, { schema, table });

  get currentState(): State {
    return this.state;
  }

  /** Runs until `stop()`; rejects on a fatal error (bad prerequisites, broken protocol). */
  async run(): Promise<void> {
    const c = this.config;
    if (c.healthPort) {
      this.health = await startHealthServer(c.healthHost ?? "127.0.0.1", c.healthPort, () => ({
        healthy: this.state === "streaming" && (this.sink?.connected ?? false),
        state: this.state === "streaming" && !this.sink?.connected ? "reconnecting" : this.state,
        figures: () => this.figures(),
      }), createMetrics({
        stats: this.stats,
        inFlight: () => this.sink?.messagesInFlight ?? 0,
        reconnects: () => this.reconnects,
        streaming: () => this.state === "streaming" && (this.sink?.connected ?? false),
        startedAt: this.startedAt,
      }).text);
    }
    this.logger.info({ database: redactUrl(c.databaseUrl), broker: redactUrl(c.redisUrl ?? c.mqttUrl), slot: c.slot, publication: c.publication }, "starting");
    let originTimer: NodeJS.Timeout | undefined;
    try {
      await this.followHost();
      const origin = new OriginGuard(c.dataDir, c.slot, c.startAfresh === true, {
        warn: (message) => this.logger.warn(message),
        info: (message) => this.logger.info(message),
      });
      this.origin = origin;
      let onStandby = false;
      const prepared = await this.withDatabase(async (query) => {
        onStandby = (await checkDecodingHost(query, { snapshotInitial: c.snapshotInitial === true })).standby;
        const result = await prepareDatabase(query, {
          slot: c.slot,
          publication: c.publication,
          tables: c.tables,
          beforeSlot: (slotNow) => origin.check(this.databaseUrl, slotNow),
        });
        const confirmed = (await query("SELECT confirmed_flush_lsn::text AS lsn FROM pg_replication_slots WHERE slot_name = $1", [c.slot])).rows[0]?.lsn;
        if (confirmed) origin.save(parseLsn(confirmed));
        this.types.add(await new CatalogReader(query).types());
        return result;
      });
      if (onStandby) {
        this.logger.warn("decoding on a standby (PostgreSQL 16+): live changes only; snapshots and RPC are off (their watermarks need a write on the primary)");
      }
      for (const sql of prepared.applied) this.logger.info({ sql }, "applied");
      this.reportTables(prepared.tables);

      const credentials = readCredentials({ username: c.mqttUsername, password: c.mqttPassword, caFile: c.mqttCaFile, certFile: c.mqttCertFile, keyFile: c.mqttKeyFile });
      if (c.redisUrl) {
        this.sink = new RedisSink({ url: c.redisUrl, maxInFlight: c.maxInFlight, ...(c.redisCa ? { ca: c.redisCa } : {}), logger: this.logger });
      } else {
        this.sink = new MqttSink({
          url: c.mqttUrl,
          qos: c.qos,
          clientId: c.mqttClientId ?? `tera-cdc-${c.slot}-${randomBytes(4).toString("hex")}`,
          ...credentials,
          maxInFlight: c.maxInFlight,
          logger: this.logger,
        });
      }
      try {
        await this.sink.connect();
      } catch (error) {
        // SIGTERM while the broker was away or refused us: a clean stop, nothing was streamed.
        if (this.stopRequested) return;
        throw error;
      }
      this.logger.info({ protocol: this.sink.protocol, signed: c.signingKey !== undefined }, "broker connected");
      if (this.sink instanceof MqttSink && c.signingKey !== undefined && !this.sink.isMqtt5) {
        throw new ConfigError(`the broker at ${redactUrl(c.mqttUrl)} speaks only MQTT 3.1.1, which has no user properties to carry the signature: use an MQTT 5 broker (Mosquitto) or leave out --signing-key-file`);
      }
      this.slotCreated = prepared.slotCreated;
      this.snapshots = new SnapshotFeature({
        databaseUrl: this.databaseUrl,
        slot: c.slot,
        publication: c.publication,
        chunkSize: c.snapshotChunkSize ?? 2048,
        statementTimeoutMs: c.snapshotStatementTimeoutMs ?? 60_000,
        maxRunning: c.snapshotMaxRunning ?? 2,
        moduleName: c.moduleName ?? "tera-cdc",
        allowedModels: c.snapshotModels ?? [],
        // tera-cdc's RPC travels on MQTT; with Redis there is none (docs/opentera.md says why).
        rpc: (c.rpc ?? false) && !onStandby && !c.redisUrl,
        rpcPolicy: c.rpcPolicy ?? DEFAULT_RPC_POLICY,
        mqttUrl: c.mqttUrl,
        mqttCredentials: credentials,
        mqttClientId: `${c.mqttClientId ?? `tera-cdc-${c.slot}`}-rpc-${randomBytes(4).toString("hex")}`,
        types: this.types,
        tableSettings: this.settingsOf,
        figures: () => ({ state: this.state, ...this.figures() }),
        logger: this.logger,
      });
      originTimer = setInterval(() => {
        try {
          origin.save(this.stats.confirmedLsn);
        } catch (error) {
          this.logger.warn(oneLine(error as Error));
        }
      }, ORIGIN_SAVE_MS);
      originTimer.unref();
      await this.streamUntilStopped();
      origin.save(this.stats.confirmedLsn);
    } finally {
      clearInterval(originTimer);
      this.state = "stopped";
      // Bounded: closing an MQTT client gracefully waits for a broker that may be away.
      await Promise.race([this.snapshots?.close().catch(() => {}), new Promise((resolve) => setTimeout(resolve, CLOSE_WAIT_MS))]);
      await this.sink?.close();
      await new Promise<void>((resolve) => (this.health ? this.health.close(() => resolve()) : resolve()));
    }
  }

  /** Clean stop: no new WAL is read, in-flight messages are acknowledged, the last position confirmed. */
  async stop(): Promise<void> {
    if (this.stopRequested) return;
    this.stopRequested = true;
    this.state = "stopping";
    // Still trying to reach the broker at start: stop trying (the sink's retry loop would wait).
    if (this.sink && !this.sink.connected && !this.stream) void this.sink.close();
    this.stream?.pause();
    this.wake?.();
    this.signalStop();
  }

  figures(): Record<string, number | string> {
    const s = this.stats;
    return {
      changes: s.changes,
      messages: s.messages,
      transactions: s.transactions,
      inFlight: this.sink?.messagesInFlight ?? 0,
      confirmedLsn: formatLsn(s.confirmedLsn),
      lagSeconds: s.lastCommitTime ? Math.max(0, Date.now() / 1000 - s.lastCommitTime) : 0,
      oversize: s.oversize,
      rejected: s.rejected,
      skipped: s.skipped,
      reconnects: this.reconnects,
      uptimeSeconds: Math.round((Date.now() - this.startedAt) / 1000),
    };
  }

  private async streamUntilStopped(): Promise<void> {
    const c = this.config;
    let delay = 500;
    let startLsn: Lsn = 0n;
    while (!this.stopRequested) {
      try {
        await this.followHost();
      } catch (error) {
        // Every host down, or none read-write yet (a failover under way): wait as after a lost connection.
        this.state = "reconnecting";
        this.logger.warn({ retryInMs: delay }, oneLine(error as Error));
        await this.sleep(delay);
        delay = Math.min(delay * 2, MAX_RECONNECT_DELAY_MS);
        continue;
      }
      // Standby: another instance streams from the slot; take over when it lets go.
      let holder = await this.withDatabase((query) => slotHolder(query, c.slot)).catch(() => null);
      if (holder !== null) {
        this.state = "standby";
        this.logger.info({ pid: holder }, `slot ${c.slot} is in use by another process: waiting as a standby`);
        while (holder !== null && !this.stopRequested) {
          await this.sleep(c.standbyPollMs);
          holder = await this.withDatabase((query) => slotHolder(query, c.slot)).catch(() => holder);
        }
        if (this.stopRequested) break;
      }
      // Start where the slot is (the server would anyway): the confirmed position is never reported as 0/0.
      if (startLsn === 0n) startLsn = (await this.withDatabase((query) => slotConfirmedPosition(query, c.slot)).catch(() => null)) ?? 0n;
      if (startLsn > this.stats.confirmedLsn) this.stats.confirmedLsn = startLsn;
      const ended = new Promise<Error>((resolve) => {
        this.connectStream(startLsn, resolve).then(
          () => {
            this.state = "streaming";
            this.streamed = true;
            delay = 500;
            this.logger.info({ slot: c.slot, confirmedLsn: formatLsn(this.stream!.confirmedLsn) }, "streaming");
            this.snapshots?.streaming(this.slotCreated && c.snapshotInitial === true).catch((error: Error) => {
              this.logger.error(`snapshots and RPC unavailable: ${oneLine(error)}`);
            });
          },
          (error: Error) => resolve(error),
        );
      });
      const error = await Promise.race([ended, this.stopped]);
      if (error === "stop") break;
      // The slot vanished under the stream (dropped; or a failover to a server without it): stop and say what may be missed.
      if ((error as { code?: string }).code === "42704" && this.origin) {
        const confirmed = await this.tearDownStream();
        throw await this.origin.slotGone(this.databaseUrl, confirmed);
      }
      if (error instanceof FatalError) throw error;
      if (isSlotInUse(error)) {
        this.logger.info("slot taken by another instance: waiting as a standby");
        continue;
      }
      // The connection is gone: let what is in flight land (order), then resume from the confirmed position.
      startLsn = await this.tearDownStream();
      this.state = "reconnecting";
      this.reconnects++;
      this.logger.warn({ retryInMs: delay }, `replication connection lost: ${oneLine(error)}; reconnecting`);
      await this.sleep(delay);
      delay = Math.min(delay * 2, MAX_RECONNECT_DELAY_MS);
    }
    // Clean stop: everything in flight acknowledged (bounded wait), final position confirmed.
    const drained = await this.sink!.drained(STOP_DRAIN_MS, true);
    if (!drained) this.logger.warn({ inFlight: this.sink!.messagesInFlight }, "stopping before the broker acknowledged everything; those changes will be sent again");
    // Already waited for above: what is still in flight will not be acknowledged soon.
    const confirmed = await this.tearDownStream(0);
    if (this.streamed) await this.persistSlotPosition();
    this.logger.info({ confirmedLsn: formatLsn(confirmed) }, "stopped");
  }

  /** After the stream closed: the confirmed position survives a PostgreSQL restart (source/slot-position.ts). */
  private async persistSlotPosition(): Promise<void> {
    const outcome = await this.withDatabase((query) => persistConfirmedPosition(query, this.config.slot)).catch((error: Error) => ({ persisted: false, reason: error.message }) as const);
    if (!outcome.persisted) this.logger.warn(`the slot's confirmed position may not survive a PostgreSQL restart: ${outcome.reason}`);
  }

  private async connectStream(startLsn: Lsn, ended: (error: Error) => void): Promise<void> {
    const c = this.config;
    const stream = new ReplicationStream({ databaseUrl: this.databaseUrl, slot: c.slot, publication: c.publication });
    const openCatalogClient = async () => {
      const client = new pg.Client({ connectionString: this.databaseUrl, application_name: "tera-cdc catalog" });
      client.on("error", () => {});
      await client.connect();
      return client;
    };
    let catalogClient = await openCatalogClient();
    const catalog = new CatalogReader(async (sql, params) => {
      try {
        return await catalogClient.query(sql, params as unknown[]);
      } catch (error) {
        if (!isConnectionError(error as Error)) throw error;
        // The look-up connection sits idle between relations: an administrator or
        // idle_session_timeout may have closed it. One fresh connection, then give up.
        const previous = catalogClient;
        await previous.end().catch(() => {});
        catalogClient = await openCatalogClient();
        // Closed with its stream, unless that stream is already torn down (then closed here).
        const owned = this.catalogClient === previous;
        if (owned) this.catalogClient = catalogClient;
        try {
          return await catalogClient.query(sql, params as unknown[]);
        } finally {
          if (!owned) await catalogClient.end().catch(() => {});
        }
      }
    });
    const pipeline = new Pipeline(
      stream,
      this.sink!,
      catalog,
      this.types,
      {
        tableSettings: this.settingsOf,
        maxMessageBytes: c.maxMessageBytes,
        onOversize: c.onOversize,
        deadLetterTopic: c.deadLetterTopic,
        batchEvents: c.batchEvents,
        batchBytes: c.batchBytes,
        confirmIntervalMs: 100,
        observer: this.snapshots?.observer,
        signingKey: c.signingKey,
      },
      this.stats,
      this.logger,
      startLsn,
      // A lost catalog connection (TransientError) is resumed like a lost stream; a FatalError stops the run.
      (error) => ended(error),
    );
    this.stream = stream;
    this.pipeline = pipeline;
    this.catalogClient = catalogClient;
    // Snapshot chunks whose events the previous connection had not delivered are taken again.
    this.snapshots?.streamRestarted();
    try {
      await stream.start(startLsn, {
        data: (walStart, payload) => pipeline.data(walStart, payload),
        keepalive: (walEnd) => pipeline.keepalive(walEnd),
        closed: (error) => ended(error),
      }, c.statusIntervalMs);
    } catch (error) {
      this.stream = null;
      this.pipeline = null;
      this.catalogClient = null;
      await catalogClient.end().catch(() => {});
      throw error;
    }
  }

  /** Waits for in-flight messages (bounded), confirms, closes the stream; returns the confirmed LSN. */
  private async tearDownStream(drainMs = STOP_DRAIN_MS): Promise<Lsn> {
    const stream = this.stream;
    const pipeline = this.pipeline;
    this.stream = null;
    this.pipeline = null;
    if (!stream || !pipeline) return this.stats.confirmedLsn;
    pipeline.detach();
    await this.sink!.drained(drainMs);
    const confirmed = pipeline.flush();
    await stream.stop();
    await this.catalogClient?.end().catch(() => {});
    this.catalogClient = null;
    return confirmed;
  }

  private reportTables(tables: Awaited<ReturnType<typeof prepareDatabase>>["tables"]): void {
    for (const table of tables) {
      const settings = this.settingsOf(table.relation.schema, table.relation.table);
      const plan = planRelation(table.relation, table.primaryKey, settings, this.types);
      this.logger.info({ table: plan.qualifiedName, model: plan.model, topic: plan.mqttTopic, columns: plan.columns.map((x) => x.name) }, "publishing table");
      if (plan.withheld.length > 0) {
        this.logger.info({ table: plan.qualifiedName, withheld: plan.withheld }, "secret-looking columns withheld (name them in the table's columns setting to publish them)");
      }
      if (plan.deleteKeysUnavailable.length > 0) {
        this.logger.warn(
          { table: plan.qualifiedName, missing: plan.deleteKeysUnavailable },
          `deletes will not carry ${plan.deleteKeysUnavailable.join(", ")}: the replica identity holds only the key; run ALTER TABLE ${plan.qualifiedName} REPLICA IDENTITY FULL to include them`,
        );
      }
      const toastable = table.toastable.filter((name) => plan.columns.some((x) => x.name === name));
      if (table.relation.replicaIdentity !== "f" && toastable.length > 0) {
        this.logger.warn(
          { table: plan.qualifiedName, columns: toastable },
          `an UPDATE that leaves a large value of ${toastable.join(", ")} unchanged omits it (listed in the unchanged property); run ALTER TABLE ${plan.qualifiedName} REPLICA IDENTITY FULL to always publish it`,
        );
      }
    }
  }

  private withDatabase<T>(work: (query: Query) => Promise<T>): Promise<T> {
    return withDatabase(this.databaseUrl, "tera-cdc setup", work);
  }

  /**
   * Chooses the host of --database-url to use now: with several hosts, the first that answers and
   * is read-write (target_session_attrs), so a promoted standby is followed after a failover.
   */
  private async followHost(): Promise<void> {
    const url = await chooseHost(this.config.databaseUrl);
    if (url !== this.databaseUrl && this.databaseUrl !== "") this.logger.warn({ database: redactUrl(url) }, "following another host of the database URL");
    this.databaseUrl = url;
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.wake = null;
        resolve();
      }, ms);
      this.wake = () => {
        clearTimeout(timer);
        this.wake = null;
        resolve();
      };
    });
  }

}

function isSlotInUse(error: Error): boolean {
  return (error as { code?: string }).code === "55006" || /is active for PID/i.test(error.message);
}

function oneLine(error: Error): string {
  return error.message.split("\n")[0]!;
}

