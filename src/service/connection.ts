import pg from "pg";
import type { TypeCatalog } from "../decode/types.js";
import { isConnectionError } from "../errors.js";
import type { Lsn } from "../lsn.js";
import type { TableSettings } from "../model/plan.js";
import type { Logger } from "../ops/log.js";
import type { PipelineConfig } from "../pipeline/config.js";
import { Pipeline } from "../pipeline/pipeline.js";
import type { SinkConnection, StreamObserver } from "../pipeline/ports.js";
import type { PipelineStats } from "../pipeline/stats.js";
import { CatalogReader } from "../source/catalog.js";
import { ReplicationStream } from "../source/replication.js";

/** Least time between two status updates sent because the safe position moved. */
const CONFIRM_INTERVAL_MS = 100;

export interface StreamConnectionOptions {
  /** The host of the database URL in use now. */
  readonly databaseUrl: string;
  readonly slot: string;
  readonly publication: string;
  readonly pipeline: PipelineConfig;
  readonly settingsOf: (schema: string, table: string) => TableSettings;
  readonly sink: SinkConnection;
  readonly types: TypeCatalog;
  readonly stats: PipelineStats;
  readonly observer?: StreamObserver;
  readonly logger: Logger;
  readonly startLsn: Lsn;
  /** The stream ended: connection lost (TransientError or a pg error), or a FatalError that stops the run. */
  readonly ended: (error: Error) => void;
}

/**
 * One replication connection and what lives exactly as long as it: the stream, the plain
 * connection for catalog look-ups (types, primary keys) and the pipeline between stream and sink.
 */
export class StreamConnection {
  private catalogClient: pg.Client | null;

  private constructor(
    readonly stream: ReplicationStream,
    private readonly pipeline: Pipeline,
    catalogClient: pg.Client,
    private readonly sink: SinkConnection,
  ) {
    this.catalogClient = catalogClient;
  }

  /** Opens the catalog connection and builds the pipeline; `start()` then starts streaming. */
  static async open(o: StreamConnectionOptions): Promise<StreamConnection> {
    const stream = new ReplicationStream({ databaseUrl: o.databaseUrl, slot: o.slot, publication: o.publication });
    const openCatalogClient = async () => {
      const client = new pg.Client({ connectionString: o.databaseUrl, application_name: "tera-cdc catalog" });
      client.on("error", () => {});
      await client.connect();
      return client;
    };
    let connection: StreamConnection | null = null;
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
        const owned = connection !== null && connection.catalogClient === previous;
        if (connection !== null && owned) connection.catalogClient = catalogClient;
        try {
          return await catalogClient.query(sql, params as unknown[]);
        } finally {
          if (!owned) await catalogClient.end().catch(() => {});
        }
      }
    });
    const { tableSettings: _perTable, ...publishing } = o.pipeline;
    const pipeline = new Pipeline(
      stream,
      o.sink,
      catalog,
      o.types,
      { ...publishing, tableSettings: o.settingsOf, confirmIntervalMs: CONFIRM_INTERVAL_MS, observer: o.observer },
      o.stats,
      o.logger,
      o.startLsn,
      // A lost catalog connection (TransientError) is resumed like a lost stream; a FatalError stops the run.
      (error) => o.ended(error),
    );
    connection = new StreamConnection(stream, pipeline, catalogClient, o.sink);
    return connection;
  }

  /** Starts streaming from `startLsn`; on failure the catalog connection is closed too. */
  async start(startLsn: Lsn, statusIntervalMs: number, ended: (error: Error) => void): Promise<void> {
    const pipeline = this.pipeline;
    try {
      await this.stream.start(startLsn, {
        data: (walStart, payload) => pipeline.data(walStart, payload),
        keepalive: (walEnd) => pipeline.keepalive(walEnd),
        closed: (error) => ended(error),
      }, statusIntervalMs);
    } catch (error) {
      await this.closeCatalog();
      throw error;
    }
  }

  /** Clean stop: finishes the transaction in progress, then reads nothing more (Pipeline.finishTransaction). */
  finishTransaction(): Promise<void> {
    return this.pipeline.finishTransaction();
  }

  /** Reads nothing more, now. */
  halt(): void {
    this.pipeline.halt();
  }

  /** Waits for in-flight messages (at most `drainMs`), confirms, closes the stream and the catalog connection; the confirmed LSN. */
  async tearDown(drainMs: number): Promise<Lsn> {
    this.pipeline.detach();
    await this.sink.drained(drainMs);
    const confirmed = this.pipeline.flush();
    await this.stream.stop();
    await this.closeCatalog();
    return confirmed;
  }

  private async closeCatalog(): Promise<void> {
    const client = this.catalogClient;
    this.catalogClient = null;
    await client?.end().catch(() => {});
  }
}
