import type { BrokerCredentials } from "../mqtt/connect.js";
import type { TypeCatalog } from "../decode/types.js";
import type { TableSettings } from "../model/plan.js";
import type { Logger } from "../ops/log.js";
import { type RpcCaller, RpcError, type RpcMethodSpec, type RpcPolicy } from "../rpc/dispatch.js";
import { RpcServer } from "../rpc/server.js";
import { publicationTables } from "../source/published-tables.js";
import type { TableRef } from "../source/table-ref.js";
import pg from "pg";
import { SnapshotManager, SnapshotRequestError } from "./manager.js";
import { WatermarkObserver } from "./observer.js";
import { progressTopic } from "./protocol.js";

export { WatermarkObserver } from "./observer.js";

export interface SnapshotFeatureOptions {
  /** The database host streamed from now: after a failover, the new primary's URL. */
  readonly databaseUrl: () => string;
  readonly slot: string;
  readonly publication: string;
  readonly chunkSize: number;
  /** Longest a snapshot statement may run, in ms. */
  readonly statementTimeoutMs: number;
  /** Snapshots running at once at most. */
  readonly maxRunning: number;
  readonly moduleName: string;
  /** Models callers may snapshot over RPC; empty: every published model. */
  readonly allowedModels: readonly string[];
  /** Whether to listen for RPC requests at all. */
  readonly rpc: boolean;
  /** Request size, reply topics, operators (docs/security.md). */
  readonly rpcPolicy: RpcPolicy;
  readonly mqttUrl: string;
  readonly mqttCredentials: BrokerCredentials;
  readonly mqttClientId: string;
  readonly types: TypeCatalog;
  readonly tableSettings: (schema: string, table: string) => TableSettings;
  /** The service's figures (confirmed LSN, lag, state) for the `status` method. */
  readonly figures: () => Record<string, unknown>;
  readonly logger: Logger;
}

/**
 * Snapshots and the RPC that requests them, as one part of `run`: the stream observer the
 * pipeline calls, the manager that runs chunks, and the RPC listener on `module/<name>/rpc`.
 */
export class SnapshotFeature {
  readonly observer = new WatermarkObserver();
  readonly manager: SnapshotManager;
  private rpc: RpcServer | null = null;
  private started = false;

  constructor(private readonly options: SnapshotFeatureOptions) {
    this.manager = new SnapshotManager({
      databaseUrl: options.databaseUrl,
      slot: options.slot,
      chunkSize: options.chunkSize,
      statementTimeoutMs: options.statementTimeoutMs,
      maxRunning: options.maxRunning,
      observer: this.observer,
      types: options.types,
      tableSettings: options.tableSettings,
      publishedTables: () => this.publishedTables(),
      onProgress: (report) => this.rpc?.publishJson(progressTopic(options.moduleName, report.id), report, { snapshot: String(report.id), status: report.status }),
      logger: options.logger,
    });
  }

  /**
   * Called each time the stream is up: the first time it starts the RPC listener, resumes the
   * snapshots left running and, with `initial`, snapshots every published model.
   */
  async streaming(initialModels: boolean): Promise<void> {
    if (this.started) return;
    this.started = true;
    const o = this.options;
    if (o.rpc) {
      this.rpc = new RpcServer({ url: o.mqttUrl, moduleName: o.moduleName, credentials: o.mqttCredentials, clientId: o.mqttClientId, methods: this.methods(), policy: o.rpcPolicy, logger: o.logger });
      await this.rpc.start();
    }
    await this.manager.resume();
    if (initialModels) {
      for (const model of await this.manager.models()) await this.manager.start(model, null, null);
    }
  }

  /** The replication connection was replaced: chunks in progress are taken again. */
  streamRestarted(): void {
    this.observer.streamRestarted();
  }

  async close(): Promise<void> {
    await this.manager.stop();
    await this.rpc?.close();
  }

  private async publishedTables(): Promise<TableRef[]> {
    const client = new pg.Client({ connectionString: this.options.databaseUrl(), application_name: "tera-cdc snapshot" });
    client.on("error", () => {});
    await client.connect();
    try {
      return (await publicationTables((sql, params) => client.query(sql, params as unknown[]), this.options.publication)) ?? [];
    } finally {
      await client.end().catch(() => {});
    }
  }

  private methods(): Record<string, RpcMethodSpec> {
    const manager = this.manager;
    // A snapshot is the business of the caller that started it (its reply topic) and of operators;
    // to anyone else it does not exist.
    const visible = (owned: { caller: string | null }, caller: RpcCaller) => caller.operator || owned.caller === caller.replyTopic;
    const owned = async (id: number, caller: RpcCaller) => {
      const found = await manager.status(id);
      if (!found || !visible(found, caller)) throw new RpcError(`unknown snapshot id ${id}: snapshot(model) returns the id`);
      return found.report;
    };
    const refused = (error: unknown): never => {
      if (error instanceof SnapshotRequestError) throw new RpcError(error.message);
      throw error;
    };
    return {
      status: {
        signature: "status()",
        handler: async (args, caller) => {
          args.atMost(0);
          const tables = await this.publishedTables();
          return {
            module: this.options.moduleName,
            slot: this.options.slot,
            publication: this.options.publication,
            tables: tables.map((t) => `${t.schema}.${t.table}`),
            models: await manager.models(),
            ...this.options.figures(),
            snapshots: (await manager.inProgress()).filter((s) => visible(s, caller)).map((s) => s.report),
          };
        },
      },
      snapshot: {
        signature: "snapshot(model, [filter])",
        handler: async (args, caller) => {
          args.atMost(2);
          const model = args.string(0, "model");
          const filter = args.optionalString(1, "filter");
          const allowed = this.options.allowedModels;
          if (allowed.length > 0 && !allowed.includes(model)) {
            throw new RpcError(`snapshots of model "${model}" are not allowed: allowed are ${allowed.join(", ")} (setting snapshot-models)`);
          }
          return manager.start(model, filter, caller.replyTopic).catch(refused);
        },
      },
      snapshot_status: {
        signature: "snapshot_status(id)",
        handler: async (args, caller) => {
          args.atMost(1);
          return owned(args.integer(0, "id"), caller);
        },
      },
      snapshot_cancel: {
        signature: "snapshot_cancel(id)",
        handler: async (args, caller) => {
          args.atMost(1);
          const id = args.integer(0, "id");
          const report = await owned(id, caller);
          if (report.status !== "running") throw new RpcError(`snapshot ${id} is ${report.status}, not running: nothing to cancel`);
          return manager.cancel(id);
        },
      },
    };
  }
}
