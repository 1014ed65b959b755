import { Checkpointer } from "../checkpoint/checkpointer.js";
import { PgoutputDecoder, type PgoutputMessage, type RelationMessage, type TupleValues } from "../decode/pgoutput.js";
import { postgresMicrosToIso, postgresMicrosToUnixSeconds } from "../decode/time.js";
import type { TypeCatalog } from "../decode/types.js";
import { classifyDatabaseError, FatalError, type TransientError } from "../errors.js";
import { formatLsn, type Lsn } from "../lsn.js";
import { type ChangeOp, DB_EVENT_TYPE, deleteObject, insertObject, type ObjectJson, TRUNCATE_OBJECT, updateObject } from "../model/events.js";
import type { TableSettings } from "../model/plan.js";
import { Batcher } from "./batcher.js";
import { changeEnvelope, type DbEvent, type StreamContext } from "./envelope.js";
import { Injection } from "./injection.js";
import type { CoreLog, EventSink, InjectedEvents, RelationCatalog, StreamControl, StreamObserver, WalReceiver } from "./ports.js";
import { type OversizeRule, Publisher } from "./publisher.js";
import { RelationPlanner } from "./relations.js";
import type { PipelineStats } from "./stats.js";

export interface PipelineOptions {
  readonly tableSettings: (schema: string, table: string) => TableSettings;
  readonly maxMessageBytes: number;
  readonly onOversize: OversizeRule;
  readonly deadLetterTopic: string;
  /** DatabaseEvents of one model and transaction per TeraEvent (1 = OpenTera's default). */
  readonly batchEvents: number;
  readonly batchBytes: number;
  /** Least time between two status updates sent because the safe position moved. */
  readonly confirmIntervalMs: number;
  /** Sees logical messages and row changes in stream order (snapshots' watermarks, src/snapshot). */
  readonly observer?: StreamObserver;
  /** When given, every message gets its `sig` user property (src/messages/signature.ts). */
  readonly signingKey?: Uint8Array;
}

type WalItem = { payload: Buffer } | { walEnd: Lsn };

/** The object of every truncate (see TRUNCATE_OBJECT). */
const TRUNCATED: ObjectJson = { json: TRUNCATE_OBJECT, unchanged: null };

/**
 * The conductor of `run` for one replication connection: reads WAL in order under back-pressure
 * and dispatches each pgoutput message to its stage (relation planning, batching, publishing,
 * snapshot injection), with the checkpointer closing the loop to the confirmed LSN.
 *
 * Flow control: everything happens synchronously per message until the sink's window is full or
 * a new relation needs a catalog look-up; then the stream is paused and messages that were
 * already read wait in a short queue. Memory is bounded by the window, not the transaction.
 */
export class Pipeline implements WalReceiver {
  private readonly decoder = new PgoutputDecoder();
  private readonly checkpointer: Checkpointer;
  private readonly relations: RelationPlanner;
  private readonly batcher: Batcher;
  private readonly publisher: Publisher;
  private readonly queue: WalItem[] = [];
  private queueHead = 0;
  private blocked: "sink" | "catalog" | null = null;
  private tx: StreamContext | null = null;
  /** Injected events being published (they come before any later WAL item). */
  private injection: Injection | null = null;
  private failure: Error | null = null;
  /** A clean stop waits for the transaction in progress to end (finishTransaction). */
  private halting: Promise<void> | null = null;
  private haltingDone: (() => void) | null = null;
  /** Reads nothing more: a clean stop reached a transaction boundary (or could not wait for one). */
  private halted = false;
  private readonly onRoom = () => {
    if (this.blocked === "sink" && this.sink.hasRoom) {
      this.blocked = null;
      this.drain();
    }
  };

  constructor(
    private readonly stream: StreamControl,
    private readonly sink: EventSink,
    catalog: RelationCatalog,
    types: TypeCatalog,
    private readonly options: PipelineOptions,
    private readonly stats: PipelineStats,
    log: CoreLog,
    startLsn: Lsn,
    /** The stream cannot go on: a TransientError (reconnect and resume) or a FatalError (stop). */
    private readonly onFatal: (error: TransientError | FatalError) => void,
  ) {
    this.checkpointer = new Checkpointer(startLsn, stream, {
      minIntervalMs: options.confirmIntervalMs,
      onConfirmed: (lsn) => {
        stats.confirmedLsn = lsn;
        options.observer?.onSafeLsn(lsn);
      },
    });
    this.relations = new RelationPlanner(catalog, types, options.tableSettings, log);
    this.batcher = new Batcher(options.batchEvents, options.batchBytes);
    this.publisher = new Publisher(sink, this.checkpointer, options, stats, log);
    sink.on("room", this.onRoom);
  }

  get safeLsn(): Lsn {
    return this.checkpointer.safeLsn;
  }

  /** Stops listening to the sink; acknowledgements still in flight keep updating the checkpointer. */
  detach(): void {
    this.sink.off("room", this.onRoom);
    this.blocked = "sink";
  }

  /**
   * Clean stop: the rest of the transaction in progress is still read and published, through its
   * COMMIT, so that it is confirmed and not sent again after a restart; then nothing more is read.
   * Resolves at that boundary (at once between transactions).
   */
  finishTransaction(): Promise<void> {
    if (this.halted) return Promise.resolve();
    this.halting ??= new Promise<void>((resolve) => (this.haltingDone = resolve));
    this.haltAtBoundary();
    return this.halting;
  }

  /** Reads nothing more, now: a stop that cannot wait for the transaction's end (its published part is sent again after a restart). */
  halt(): void {
    this.halted = true;
    this.stream.pause();
    this.haltingDone?.();
    this.haltingDone = null;
  }

  private haltAtBoundary(): void {
    if (this.halting !== null && !this.halted && this.tx === null && this.injection === null) this.halt();
  }

  /** Confirms the safe position now (the stream's end); returns it. */
  flush(): Lsn {
    return this.checkpointer.flush();
  }

  data(walStart: Lsn, payload: Buffer): void {
    if (walStart > this.stats.serverWalEnd) this.stats.serverWalEnd = walStart;
    if (this.blocked === null && !this.halted && this.queueHead === this.queue.length && this.injection === null) {
      this.handle(payload);
      if (this.injection !== null) this.drain();
      else if (this.blocked !== null) this.stream.pause();
      return;
    }
    this.queue.push({ payload });
    this.stream.pause();
  }

  keepalive(walEnd: Lsn): void {
    if (walEnd > this.stats.serverWalEnd) this.stats.serverWalEnd = walEnd;
    if (this.blocked === null && !this.halted && this.queueHead === this.queue.length && this.injection === null) {
      this.passed(walEnd);
      return;
    }
    this.queue.push({ walEnd });
  }

  private drain(): void {
    while (this.queueHead < this.queue.length || this.injection !== null) {
      if (this.blocked !== null || this.failure || this.halted) {
        this.stream.pause();
        return;
      }
      if (this.injection !== null) {
        this.publishInjected();
        continue;
      }
      const item = this.queue[this.queueHead]!;
      this.queue[this.queueHead++] = undefined as unknown as WalItem;
      if ("walEnd" in item) this.passed(item.walEnd);
      else this.handle(item.payload);
    }
    this.queue.length = 0;
    this.queueHead = 0;
    if (this.blocked === null && !this.halted) this.stream.resume();
    else this.stream.pause();
  }

  private passed(lsn: Lsn): void {
    if (this.tx === null) this.checkpointer.passed(lsn);
  }

  private handle(payload: Buffer): void {
    const published = this.stats.messages;
    let message: PgoutputMessage;
    try {
      message = this.decoder.decode(payload);
    } catch (error) {
      this.fail(error instanceof FatalError ? error : new FatalError(`decoding a WAL message failed: ${(error as Error).message}`, { cause: error }));
      return;
    }
    switch (message.tag) {
      case "begin":
        this.tx = {
          position: this.checkpointer.open(),
          lsnText: formatLsn(message.commitLsn),
          xid: message.xid,
          xidText: String(message.xid),
          commitIso: postgresMicrosToIso(message.commitTime),
          commitSeconds: postgresMicrosToUnixSeconds(message.commitTime),
          seq: 0,
        };
        break;
      case "commit": {
        this.flushBatch();
        const tx = this.tx;
        this.tx = null;
        this.stats.transactions++;
        if (tx) {
          this.stats.lastCommitTime = tx.commitSeconds;
          this.checkpointer.close(tx.position, message.endLsn);
        }
        this.haltAtBoundary();
        break;
      }
      case "relation":
        this.planFor(message);
        break;
      case "insert":
        this.change(message.relation, "create", message.newValues, null, false);
        break;
      case "update":
        this.change(message.relation, "update", message.newValues, message.oldValues, message.oldIsFullRow);
        break;
      case "delete":
        this.change(message.relation, "delete", message.oldValues, null, false);
        break;
      case "truncate":
        for (const relation of message.relations) this.change(relation, "truncate", [], null, false);
        break;
      case "message": {
        const events = this.options.observer?.onLogicalMessage(message) ?? null;
        if (events) this.inject(events);
        break;
      }
      default:
        break;
    }
    if (this.stats.messages !== published && this.blocked === null && !this.sink.hasRoom) this.blocked = "sink";
  }

  /** Plans a relation; while the catalog is read, the stream waits. */
  private planFor(relation: RelationMessage): void {
    const lookUp = this.relations.adopt(relation);
    if (lookUp === null) return;
    this.blocked = "catalog";
    this.stream.pause();
    lookUp.then(
      () => {
        this.blocked = null;
        if (!this.sink.hasRoom) this.blocked = "sink";
        this.drain();
      },
      // A lost connection is worth reconnecting for (TransientError); a refused query is not.
      (error: unknown) => this.fail(classifyDatabaseError(error, `reading the catalog for ${relation.schema}.${relation.table}`)),
    );
  }

  /**
   * One row change: `values` is the new row (the old one for a delete), `oldValues` an update's
   * old row. The object is built here from them, not by a closure per change (one per row of the
   * one-event path, with the context it captured).
   */
  private change(relation: RelationMessage, op: ChangeOp, values: TupleValues, oldValues: TupleValues | null, oldIsFullRow: boolean): void {
    const tx = this.tx;
    const plan = this.relations.planOf(relation.relationOid);
    if (!tx || !plan) {
      this.fail(new FatalError(`row change for ${relation.schema}.${relation.table} outside a transaction or before its relation`));
      return;
    }
    const seq = tx.seq++;
    this.options.observer?.onRowChange(plan, op, oldValues ? [values, oldValues] : [values], tx.xid);
    const object =
      op === "create"
        ? insertObject(plan, values)
        : op === "update"
          ? updateObject(plan, values, oldValues, oldIsFullRow)
          : op === "delete"
            ? deleteObject(plan, values)
            : TRUNCATED;
    this.stats.changes++;
    const key = this.relations.countKey(plan, op);
    this.stats.byModelOp.set(key, (this.stats.byModelOp.get(key) ?? 0) + 1);
    const event: DbEvent = { type: DB_EVENT_TYPE[op], objectType: plan.model, objectValue: object.json };
    if (this.batcher.enabled && op !== "truncate" && object.unchanged === null) {
      for (const batch of this.batcher.add(plan, seq, event)) {
        this.publisher.publish(changeEnvelope(tx, batch.plan, "batch", batch.firstSeq, batch.events, null, null));
      }
      return;
    }
    this.flushBatch();
    this.publisher.publish(changeEnvelope(tx, plan, op, seq, [event], object.unchanged, values));
  }

  private flushBatch(): void {
    const batch = this.batcher.take();
    if (!batch || !this.tx) return;
    this.publisher.publish(changeEnvelope(this.tx, batch.plan, "batch", batch.firstSeq, batch.events, null, null));
  }

  /** Starts publishing injected events (see InjectedEvents): a stream position of their own, no xid. */
  private inject(events: InjectedEvents): void {
    const now = Date.now();
    this.injection = new Injection(events, {
      position: this.checkpointer.open(),
      lsnText: formatLsn(events.lsn),
      xid: 0,
      xidText: "0",
      commitIso: new Date(now).toISOString(),
      commitSeconds: now / 1000,
      seq: 0,
      properties: events.properties,
    }, new Batcher(this.options.batchEvents, this.options.batchBytes));
  }

  /** Publishes injected events while the sink has room; after the last, closes their position. */
  private publishInjected(): void {
    const injection = this.injection!;
    while (!injection.done && this.blocked === null && !this.failure) {
      const { envelope, replaceable } = injection.take();
      if (replaceable) this.publisher.publish(envelope);
      else this.publisher.publishAsIs(envelope);
      if (!this.sink.hasRoom) this.blocked = "sink";
    }
    if (!injection.done) return;
    this.injection = null;
    this.checkpointer.close(injection.context.position, injection.events.lsn);
    this.haltAtBoundary();
  }

  private fail(error: TransientError | FatalError): void {
    if (this.failure) return;
    this.failure = error;
    this.stream.pause();
    this.onFatal(error);
  }
}
