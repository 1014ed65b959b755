import { moduleRpcTopic, toMqttTopic } from "../messages/index.js";
import type { Logger } from "../ops/log.js";
import { RpcClient, type RpcReply, stringValue } from "../rpc/client.js";

/** How long the gateway waits for tera-cdc to answer a snapshot request (--snapshot-on-start). */
const SNAPSHOT_REPLY_TIMEOUT_MS = 60_000;
/** End markers remembered whose snapshot id no reply has named yet. */
const ENDED_KEPT = 100;

/** The broker as the snapshot requests use it (BrokerFeed): publish a request, receive replies on a topic of the gateway's own. */
export interface RpcBroker {
  readonly replyTopic: string;
  publish(topic: string, bytes: Uint8Array): void;
  subscribe(topic: string): Promise<void>;
}

/**
 * The gateway's own snapshots (--snapshot-on-start): asks tera-cdc over RPC for one per served
 * model, matches the replies (snapshot ids) with the end markers that come through the stream,
 * and so says whether the current rows held for a model are all of its rows.
 */
export class SnapshotTracker {
  /** Matches replies to the gateway's snapshot requests. */
  private rpc: RpcClient | null = null;
  /** The snapshots the gateway's requests started: snapshot id -> model. */
  private readonly own = new Map<string, string>();
  /** Ids of snapshots whose end marker came (the reply, on another topic, may come after it); the last ENDED_KEPT. */
  private readonly ended = new Set<string>();
  /** Models one of the gateway's snapshots has finished. */
  private readonly done = new Set<string>();

  constructor(
    private readonly models: readonly string[],
    /** The tera-cdc asked (its module name), when --snapshot-on-start. */
    private readonly moduleName: string | undefined,
    private readonly logger: Logger,
  ) {}

  /** One snapshot request per served model (OpenTera RPC, as `tera-cdc snapshot` sends it); the rows arrive through the stream. */
  async request(broker: RpcBroker): Promise<void> {
    const moduleName = this.moduleName;
    if (moduleName === undefined) return;
    const rpcTopic = toMqttTopic(moduleRpcTopic(moduleName));
    const rpc = new RpcClient({
      rpcTopic,
      replyTopic: broker.replyTopic,
      timeoutMs: SNAPSHOT_REPLY_TIMEOUT_MS,
      unanswered: (method) => `no reply to ${method} on ${rpcTopic} within ${SNAPSHOT_REPLY_TIMEOUT_MS / 1000} s (is run started with --rpc and --module-name ${moduleName}?)`,
      publish: (topic, bytes) => broker.publish(topic, bytes),
    });
    this.rpc = rpc;
    await broker.subscribe(broker.replyTopic);
    for (const model of this.models) {
      rpc.call("snapshot", [stringValue(model)]).then(
        (reply) => this.started(model, reply),
        (error: Error) => this.logger.warn(`${error.message}; current rows hold only what changed since the gateway started`),
      );
    }
    this.logger.info({ models: this.models, moduleName }, "asked tera-cdc for a snapshot of each model, for the current rows");
  }

  /** A message on the reply topic. */
  replyReceived(payload: Buffer): void {
    this.rpc?.received(payload);
  }

  /**
   * Every verified broker message's properties: the end marker of a snapshot this gateway asked
   * for (docs/snapshots.md) means its rows of that model are every current row from then on.
   */
  noteEnd(properties: Readonly<Record<string, string | string[]>>): void {
    const text = (name: string) => {
      const v = properties[name];
      return Array.isArray(v) ? v[0] : v;
    };
    if (text("snapshot-marker") !== "end") return;
    const id = text("snapshot") ?? "";
    const model = this.own.get(id);
    if (model !== undefined) return this.markDone(model);
    // Replies and markers travel on different topics: the reply naming this id may still come.
    this.ended.add(id);
    if (this.ended.size > ENDED_KEPT) this.ended.delete(this.ended.values().next().value!);
  }

  /**
   * Why the rows held for a model may not be all of its rows, or null when they are: without a
   * snapshot the gateway knows only the rows changed since it started (issue 16: outside the
   * embedded default, `run` answers snapshot requests only with --rpc).
   */
  partialReason(model: string): string | null {
    if (this.done.has(model)) return null;
    if (this.moduleName !== undefined) return "the gateway's snapshot of this model is still running: the other current rows arrive as it reads them";
    return "these are the rows changed since the gateway started: for every current row run tera-cdc with --rpc and the gateway with --snapshot-on-start";
  }

  /** The reply to a snapshot request (parsed by RpcClient: whoever may publish on the reply topic could have put anything there). */
  private started(model: string, reply: RpcReply): void {
    if (reply.error !== undefined) {
      this.logger.warn(`snapshot request refused: ${reply.error.slice(0, 200)}; current rows hold only what changed since the gateway started`);
      return;
    }
    // The snapshot method returns the new snapshot's id (src/cli/snapshot.ts reads it the same way).
    const id = reply.return_value;
    if (typeof id !== "number" || !Number.isSafeInteger(id)) {
      this.logger.warn({ model }, "the reply to a snapshot request holds no snapshot id: current rows hold only what changed since the gateway started");
      return;
    }
    this.logger.info({ snapshot: id, model }, "snapshot started");
    this.own.set(String(id), model);
    if (this.ended.has(String(id))) this.markDone(model);
  }

  private markDone(model: string): void {
    this.done.add(model);
    this.logger.info({ model }, "snapshot done: the current rows of the model are complete");
  }
}
