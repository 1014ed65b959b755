import { randomBytes } from "node:crypto";
import type { Server } from "node:http";
import { TypeCatalog } from "../decode/types.js";
import type { TableSettings } from "../model/plan.js";
import { tableSettingsFor } from "../config.js";
import type { Logger } from "../ops/log.js";
import { redactUrl } from "../ops/log.js";
import { PipelineStats } from "../pipeline/stats.js";
import type { MqttSink } from "../sinks/mqtt/sink.js";
import type { RedisSink } from "../sinks/redis/sink.js";
import { FatalError, hasSqlState, SQLSTATE } from "../errors.js";
import { readCredentials } from "../mqtt/connect.js";
import { formatLsn, type Lsn } from "../lsn.js";
import { type Query, withDatabase } from "../source/database.js";
import { chooseHost } from "../source/hosts.js";
import { OriginGuard } from "../source/origin.js";
import { persistConfirmedPosition, slotConfirmedPosition } from "../source/slot-position.js";
import { SnapshotFeature } from "../snapshot/index.js";
import type { ServiceConfig } from "./config.js";
import { StreamConnection } from "./connection.js";
import { startServiceHealth } from "./health.js";
import { prepareSource } from "./prerequisites.js";
import { checkSigningPossible, createSink } from "./sink.js";
import { isSlotInUse, waitWhileSlotHeld } from "./standby.js";

type State = "starting" | "standby" | "streaming" | "reconnecting" | "stopping" | "stopped";

const MAX_RECONNECT_DELAY_MS = 30_000;
/** How long a clean stop waits for the broker to acknowledge what is in flight. */
const STOP_DRAIN_MS = 10_000;
/** How often the stream record takes the confirmed position. */
const ORIGIN_SAVE_MS = 5_000;
/** How long closing the broker connections may take at exit. */
const CLOSE_WAIT_MS = 2_000;

/**
 * `tera-cdc run` as a long-lived service, its life cycle: prepares the database, connects the
 * sink, waits as a standby while another instance holds the slot, streams, reconnects after the
 * database or the replication connection goes away (resuming from the confirmed position), and
 * stops cleanly. Each step's work is in its own file beside this one.
 */
export class CdcService {
  readonly stats = new PipelineStats();
  private state: State = "starting";
  private readonly types = new TypeCatalog();
  private sink: MqttSink | RedisSink | null = null;
  /** The replication connection streaming now (stream, catalog look-ups, pipeline). */
  private replication: StreamConnection | null = null;
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
  /** The stream followed another host of the database URL and has not streamed there yet. */
  private hostMoved = false;

  constructor(
    private readonly config: ServiceConfig,
    private readonly logger: Logger,
  ) {
    this.stopped = new Promise((resolve) => {
      this.signalStop = () => resolve("stop");
    });
  }

  /** A table's settings from the configuration (none: publish by the defaults). */
  private readonly settingsOf = (schema: string, table: string): TableSettings => tableSettingsFor(this.config.pipeline.tableSettings, { schema, table });

  get currentState(): State {
    return this.state;
  }

  /** Runs until `stop()`; rejects on a fatal error (bad prerequisites, broken protocol). */
  async run(): Promise<void> {
    const { source, sink: sinkConfig, snapshot } = this.config;
    const service = this;
    this.health = await startServiceHealth(this.config.ops, {
      get state() {
        return service.state;
      },
      get sinkConnected() {
        return service.sink?.connected ?? false;
      },
      get messagesInFlight() {
        return service.sink?.messagesInFlight ?? 0;
      },
      get reconnects() {
        return service.reconnects;
      },
      startedAt: this.startedAt,
      stats: this.stats,
      figures: () => this.figures(),
    });
    this.logger.info({ database: redactUrl(source.databaseUrl), broker: redactUrl(sinkConfig.redisUrl ?? sinkConfig.mqtt.url), slot: source.slot, publication: source.publication }, "starting");
    let originTimer: NodeJS.Timeout | undefined;
    try {
      await this.followHost();
      const origin = new OriginGuard(source.dataDir, source.slot, source.startAfresh, {
        warn: (message) => this.logger.warn(message),
        info: (message) => this.logger.info(message),
      });
      this.origin = origin;
      const prepared = await this.withDatabase((query) =>
        prepareSource(query, { source, snapshotInitial: snapshot.initial, databaseUrl: this.databaseUrl, origin, types: this.types, settingsOf: this.settingsOf, logger: this.logger }),
      );

      const credentials = readCredentials(sinkConfig.mqtt);
      const signed = this.config.pipeline.signingKey !== undefined;
      this.sink = await createSink(sinkConfig, credentials, source.slot, this.logger);
      try {
        await this.sink.connect();
      } catch (error) {
        // SIGTERM while the broker was away or refused us: a clean stop, nothing was streamed.
        if (this.stopRequested) return;
        throw error;
      }
      this.logger.info({ protocol: this.sink.protocol, signed }, "broker connected");
      checkSigningPossible(this.sink, sinkConfig, signed);
      this.slotCreated = prepared.slotCreated;
      this.snapshots = new SnapshotFeature({
        databaseUrl: () => this.databaseUrl,
        slot: source.slot,
        publication: source.publication,
        chunkSize: snapshot.chunkSize,
        statementTimeoutMs: snapshot.statementTimeoutMs,
        maxRunning: snapshot.maxRunning,
        moduleName: snapshot.moduleName,
        allowedModels: snapshot.models,
        // tera-cdc's RPC travels on MQTT; with Redis there is none (docs/opentera.md says why).
        rpc: (snapshot.rpc ?? false) && !prepared.onStandby && !sinkConfig.redisUrl,
        rpcPolicy: snapshot.rpcPolicy,
        mqttUrl: sinkConfig.mqtt.url,
        mqttCredentials: credentials,
        mqttClientId: `${sinkConfig.mqtt.clientId ?? `tera-cdc-${source.slot}`}-rpc-${randomBytes(4).toString("hex")}`,
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
    if (this.sink && !this.sink.connected && !this.replication) void this.sink.close();
    // The transaction in progress is finished (published through its COMMIT), then nothing more is read.
    void this.replication?.finishTransaction();
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

  /** The reconnect loop: one replication connection after another until a stop or a fatal error. */
  private async streamUntilStopped(): Promise<void> {
    const { source, snapshot } = this.config;
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
      await waitWhileSlotHeld({
        slot: source.slot,
        pollMs: source.standbyPollMs,
        withDatabase: (work) => this.withDatabase(work),
        sleep: (ms) => this.sleep(ms),
        stopped: () => this.stopRequested,
        onWait: (pid) => {
          this.state = "standby";
          this.logger.info({ pid }, `slot ${source.slot} is in use by another process: waiting as a standby`);
        },
      });
      if (this.stopRequested) break;
      // Start where the slot is (the server would anyway): the confirmed position is never reported as 0/0.
      if (startLsn === 0n) startLsn = (await this.withDatabase((query) => slotConfirmedPosition(query, source.slot)).catch(() => null)) ?? 0n;
      if (startLsn > this.stats.confirmedLsn) this.stats.confirmedLsn = startLsn;
      const ended = new Promise<Error>((resolve) => {
        this.connectStream(startLsn, resolve).then(
          (connection) => {
            this.state = "streaming";
            this.streamed = true;
            delay = 500;
            this.logger.info({ slot: source.slot, confirmedLsn: formatLsn(connection.stream.confirmedLsn) }, "streaming");
            if (this.hostMoved) {
              // The slot streams on the new host (a failover slot): the record names that server from now on.
              // Not before: when the slot is missing there, the gone-slot message names the server it was on.
              this.hostMoved = false;
              this.origin?.followed(this.databaseUrl).catch((error: Error) => this.logger.warn(`stream record not updated for the new host: ${oneLine(error)}`));
            }
            this.snapshots?.streaming(this.slotCreated && snapshot.initial).catch((error: Error) => {
              this.logger.error(`snapshots and RPC unavailable: ${oneLine(error)}`);
            });
          },
          (error: Error) => resolve(error),
        );
      });
      const error = await Promise.race([ended, this.stopped]);
      if (error === "stop") break;
      // The slot vanished under the stream (dropped; or a failover to a server without it): stop and say what may be missed.
      if (hasSqlState(error, SQLSTATE.undefinedObject) && this.origin) {
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
    // Clean stop: the transaction in progress finished (bounded wait), everything in flight
    // acknowledged (bounded wait), final position confirmed.
    // One budget for both waits; neither waits for a broker that is away (SIGTERM within 10 s).
    const deadline = Date.now() + STOP_DRAIN_MS;
    const replication = this.replication;
    if (replication) {
      let finished = false;
      void replication.finishTransaction().then(() => (finished = true));
      while (!finished && this.sink!.connected && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
      if (!finished) {
        replication.halt();
        this.logger.warn("the transaction in progress did not end before the stop (the broker is away, or it is too large to wait for): what was published of it will be sent again after a restart");
      }
    }
    const drained = await this.sink!.drained(Math.max(0, deadline - Date.now()), true);
    if (!drained) this.logger.warn({ inFlight: this.sink!.messagesInFlight }, "stopping before the broker acknowledged everything; those changes will be sent again");
    // Already waited for above: what is still in flight will not be acknowledged soon.
    const confirmed = await this.tearDownStream(0);
    if (this.streamed) await this.persistSlotPosition();
    this.logger.info({ confirmedLsn: formatLsn(confirmed) }, "stopped");
  }

  /** After the stream closed: the confirmed position survives a PostgreSQL restart (source/slot-position.ts). */
  private async persistSlotPosition(): Promise<void> {
    const outcome = await this.withDatabase((query) => persistConfirmedPosition(query, this.config.source.slot)).catch((error: Error) => ({ persisted: false, reason: error.message }) as const);
    if (!outcome.persisted) this.logger.warn(`the slot's confirmed position may not survive a PostgreSQL restart: ${outcome.reason}`);
  }

  private async connectStream(startLsn: Lsn, ended: (error: Error) => void): Promise<StreamConnection> {
    const { source } = this.config;
    const connection = await StreamConnection.open({
      databaseUrl: this.databaseUrl,
      slot: source.slot,
      publication: source.publication,
      pipeline: this.config.pipeline,
      settingsOf: this.settingsOf,
      sink: this.sink!,
      types: this.types,
      stats: this.stats,
      observer: this.snapshots?.observer,
      logger: this.logger,
      startLsn,
      ended,
    });
    this.replication = connection;
    // Snapshot chunks whose events the previous connection had not delivered are taken again.
    this.snapshots?.streamRestarted();
    try {
      await connection.start(startLsn, source.statusIntervalMs, ended);
    } catch (error) {
      this.replication = null;
      throw error;
    }
    return connection;
  }

  /** Waits for in-flight messages (bounded), confirms, closes the stream; returns the confirmed LSN. */
  private async tearDownStream(drainMs = STOP_DRAIN_MS): Promise<Lsn> {
    const connection = this.replication;
    this.replication = null;
    if (!connection) return this.stats.confirmedLsn;
    return connection.tearDown(drainMs);
  }

  private withDatabase<T>(work: (query: Query) => Promise<T>): Promise<T> {
    return withDatabase(this.databaseUrl, "tera-cdc setup", work);
  }

  /**
   * Chooses the host of --database-url to use now: with several hosts, the first that answers and
   * is read-write (target_session_attrs), so a promoted standby is followed after a failover.
   */
  private async followHost(): Promise<void> {
    const url = await chooseHost(this.config.source.databaseUrl);
    if (url !== this.databaseUrl && this.databaseUrl !== "") {
      this.logger.warn({ database: redactUrl(url) }, "following another host of the database URL");
      this.hostMoved = true;
    }
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

function oneLine(error: Error): string {
  return error.message.split("\n")[0]!;
}
