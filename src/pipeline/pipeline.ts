import type { TrackedPosition } from "../checkpoint/tracker.js";
import { DeliveryTracker } from "../checkpoint/tracker.js";
import {
  PgoutputDecoder,
  type PgoutputMessage,
  type RelationMessage,
  type TupleValues,
} from "../decode/pgoutput.js";
import { postgresMicrosToIso, postgresMicrosToUnixSeconds } from "../decode/time.js";
import type { TypeCatalog } from "../decode/types.js";
import { encodeDatabaseTeraEvent } from "../messages/index.js";
import { SIGNATURE_PROPERTY_BYTES, signed } from "../messages/signature.js";
import {
  type ChangeOp,
  DB_EVENT_TYPE,
  deleteObject,
  insertObject,
  objectJson,
  TRUNCATE_OBJECT,
  updateObject,
} from "../model/events.js";
import { planRelation, type RelationPlan, type TableSettings } from "../model/plan.js";
import { classifyDatabaseError, FatalError, type TransientError } from "../errors.js";
import { formatLsn, type Lsn } from "../lsn.js";
import type { CoreLog, EventSink, InjectedEvents, OutgoingMessage, RelationCatalog, StreamControl, StreamObserver, WalReceiver } from "./ports.js";

export type OversizeRule = "keys-only" | "dead-letter" | "skip";

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

/** Counters shared by every pipeline of a run (one pipeline per replication connection). */
export class PipelineStats {
  changes = 0;
  messages = 0;
  bytes = 0;
  transactions = 0;
  oversize = 0;
  rejected = 0;
  skipped = 0;
  confirmedLsn: Lsn = 0n;
  /** Commit time (Unix seconds) of the newest published change. */
  lastCommitTime = 0;
  /** Newest WAL position the server reported (keepalive end, or start of the last message read): lag in bytes. */
  serverWalEnd: Lsn = 0n;
  readonly byModelOp = new Map<string, number>();
}

interface OpenTransaction {
  readonly position: TrackedPosition;
  readonly lsnText: string;
  readonly xid: number;
  readonly xidText: string;
  readonly commitIso: string;
  readonly commitSeconds: number;
  seq: number;
  /** Added to every message's user properties (injected events). */
  readonly properties?: Readonly<Record<string, string>>;
}

interface PendingBatch {
  readonly plan: RelationPlan;
  readonly firstSeq: number;
  readonly events: { type: number; objectType: string; objectValue: string }[];
  bytes: number;
}

type WalItem = { payload: Buffer } | { walEnd: Lsn };

/**
 * The conductor of `run` for one replication connection: WAL message → decode → model event →
 * TeraEvent bytes → MQTT, with the delivery tracker closing the loop to the confirmed LSN.
 *
 * Flow control: everything happens synchronously per message until the sink's window is full or
 * a new relation needs a catalog look-up; then the stream is paused and messages that were
 * already read wait in a short queue. Memory is bounded by the window, not the transaction.
 */
export class Pipeline implements WalReceiver {
  private readonly decoder = new PgoutputDecoder();
  private readonly tracker: DeliveryTracker;
  private readonly plans = new Map<number, RelationPlan>();
  private readonly countKeys = new Map<RelationPlan, Readonly<Record<ChangeOp, string>>>();
  private readonly queue: WalItem[] = [];
  private queueHead = 0;
  private blocked: "sink" | "catalog" | null = null;
  private tx: OpenTransaction | null = null;
  private batch: PendingBatch | null = null;
  /** Injected events being published (they come before any later WAL item). */
  private injected: { readonly events: InjectedEvents; readonly tx: OpenTransaction; next: number } | null = null;
  private failure: Error | null = null;
  private readonly onRoom = () => {
    if (this.blocked === "sink" && this.sink.hasRoom) {
      this.blocked = null;
      this.drain();
    }
  };

  constructor(
    private readonly stream: StreamControl,
    private readonly sink: EventSink,
    private readonly catalog: RelationCatalog,
    private readonly types: TypeCatalog,
    private readonly options: PipelineOptions,
    private readonly stats: PipelineStats,
    private readonly logger: CoreLog,
    startLsn: Lsn,
    /** The stream cannot go on: a TransientError (reconnect and resume) or a FatalError (stop). */
    private readonly onFatal: (error: TransientError | FatalError) => void,
  ) {
    this.tracker = new DeliveryTracker(startLsn);
    sink.on("room", this.onRoom);
  }

  get safeLsn(): Lsn {
    return this.tracker.safeLsn;
  }

  /** Stops listening to the sink; acknowledgements still in flight keep updating the tracker. */
  detach(): void {
    this.sink.off("room", this.onRoom);
    this.blocked = "sink";
  }

  data(walStart: Lsn, payload: Buffer): void {
    if (walStart > this.stats.serverWalEnd) this.stats.serverWalEnd = walStart;
    if (this.blocked === null && this.queueHead === this.queue.length && this.injected === null) {
      this.handle(payload);
      if (this.injected !== null) this.drain();
      else if (this.blocked !== null) this.stream.pause();
      return;
    }
    this.queue.push({ payload });
    this.stream.pause();
  }

  keepalive(walEnd: Lsn): void {
    if (walEnd > this.stats.serverWalEnd) this.stats.serverWalEnd = walEnd;
    if (this.blocked === null && this.queueHead === this.queue.length && this.injected === null) {
      this.passed(walEnd);
      return;
    }
    this.queue.push({ walEnd });
  }

  private drain(): void {
    while (this.queueHead < this.queue.length || this.injected !== null) {
      if (this.blocked !== null || this.failure) {
        this.stream.pause();
        return;
      }
      if (this.injected !== null) {
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
    if (this.blocked === null) this.stream.resume();
    else this.stream.pause();
  }

  private passed(lsn: Lsn): void {
    if (this.tx === null && this.tracker.passed(lsn)) this.confirm();
  }

  private handle(payload: Buffer): void {
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
          position: this.tracker.open(),
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
          if (this.tracker.close(tx.position, message.endLsn)) this.confirm();
        }
        break;
      }
      case "relation":
        this.planFor(message);
        break;
      case "insert":
        this.change(message.relation, "create", (plan) => insertObject(plan, message.newValues), message.newValues);
        break;
      case "update":
        this.change(
          message.relation,
          "update",
          (plan) => updateObject(plan, message.newValues, message.oldValues, message.oldIsFullRow),
          message.newValues,
          message.oldValues,
        );
        break;
      case "delete":
        this.change(message.relation, "delete", (plan) => deleteObject(plan, message.oldValues), message.oldValues);
        break;
      case "truncate":
        for (const relation of message.relations) {
          this.change(relation, "truncate", () => ({ json: TRUNCATE_OBJECT, unchanged: null }), []);
        }
        break;
      case "message": {
        const events = this.options.observer?.onLogicalMessage(message) ?? null;
        if (events) this.inject(events);
        break;
      }
      default:
        break;
    }
  }

  /**
   * Plans how to publish a relation. Under replica identity DEFAULT the key columns are the
   * primary key and nothing needs looking up; otherwise (and for types not seen yet) the
   * catalog is read while the stream waits.
   */
  private planFor(relation: RelationMessage): void {
    const unknownTypes = [...new Set(relation.columns.map((c) => c.typeOid).filter((oid) => !this.types.has(oid)))];
    const identityKey = relation.replicaIdentity === "d" ? relation.columns.filter((c) => (c.flags & 1) !== 0).map((c) => c.name) : null;
    if (identityKey && unknownTypes.length === 0) {
      this.adoptPlan(relation, identityKey);
      return;
    }
    this.blocked = "catalog";
    this.stream.pause();
    (async () => {
      if (unknownTypes.length > 0) this.types.add(await this.catalog.types(unknownTypes));
      this.adoptPlan(relation, identityKey ?? (await this.catalog.primaryKey(relation.relationOid)));
    })().then(
      () => {
        this.blocked = null;
        if (!this.sink.hasRoom) this.blocked = "sink";
        this.drain();
      },
      // A lost connection is worth reconnecting for (TransientError); a refused query is not.
      (error: unknown) => this.fail(classifyDatabaseError(error, `reading the catalog for ${relation.schema}.${relation.table}`)),
    );
  }

  private adoptPlan(relation: RelationMessage, primaryKey: string[]): void {
    const previous = this.plans.get(relation.relationOid);
    const plan = planRelation(relation, primaryKey, this.options.tableSettings(relation.schema, relation.table), this.types);
    this.plans.set(relation.relationOid, plan);
    // Built once per relation, not per change: the counters' keys (model and op).
    const key = (op: ChangeOp) => `${plan.model}\u0000${op}`;
    this.countKeys.set(plan, { create: key("create"), update: key("update"), delete: key("delete"), truncate: key("truncate") });
    if (!previous) return;
    this.countKeys.delete(previous);
    const before = previous.relation.columns.map((c) => c.name).join(",");
    const after = relation.columns.map((c) => c.name).join(",");
    if (before !== after) this.logger.info({ table: plan.qualifiedName, columns: after }, "table columns changed");
  }

  private change(relation: RelationMessage, op: ChangeOp, build: (plan: RelationPlan) => { json: string; unchanged: string[] | null }, values: TupleValues, oldValues: TupleValues | null = null): void {
    const tx = this.tx;
    const plan = this.plans.get(relation.relationOid);
    if (!tx || !plan) {
      this.fail(new FatalError(`row change for ${relation.schema}.${relation.table} outside a transaction or before its relation`));
      return;
    }
    const seq = tx.seq++;
    this.options.observer?.onRowChange(plan, op, oldValues ? [values, oldValues] : [values], tx.xid);
    const object = build(plan);
    this.stats.changes++;
    const key = this.countKeys.get(plan)![op];
    this.stats.byModelOp.set(key, (this.stats.byModelOp.get(key) ?? 0) + 1);
    const event = { type: DB_EVENT_TYPE[op], objectType: plan.model, objectValue: object.json };
    if (this.options.batchEvents > 1 && op !== "truncate" && object.unchanged === null) {
      if (this.batch && this.batch.plan !== plan) this.flushBatch();
      this.batch ??= { plan, firstSeq: seq, events: [], bytes: 0 };
      this.batch.events.push(event);
      this.batch.bytes += object.json.length + plan.model.length + 64;
      if (this.batch.events.length >= this.options.batchEvents || this.batch.bytes >= this.options.batchBytes) this.flushBatch();
      return;
    }
    this.flushBatch();
    this.publish(tx, plan, op, seq, [event], object.unchanged, values);
  }

  private flushBatch(): void {
    const batch = this.batch;
    if (!batch || !this.tx) return;
    this.batch = null;
    this.publish(this.tx, batch.plan, "batch", batch.firstSeq, batch.events, null, null);
  }

  private publish(
    tx: OpenTransaction,
    plan: RelationPlan,
    op: ChangeOp | "batch",
    seq: number,
    events: { type: number; objectType: string; objectValue: string }[],
    unchanged: string[] | null,
    values: TupleValues | null,
  ): void {
    const topic = plan.mqttTopic;
    const payload = encodeDatabaseTeraEvent(plan.dottedTopic, tx.commitSeconds, events);
    const properties: Record<string, string> = {
      lsn: tx.lsnText,
      xid: tx.xidText,
      "commit-time": tx.commitIso,
      table: plan.qualifiedName,
      seq: String(seq),
      op: op === "batch" ? events.map((e) => opName(e.type)).join(",") : op,
    };
    if (events.length > 1) properties.count = String(events.length);
    if (tx.properties) Object.assign(properties, tx.properties);
    if (unchanged) properties.unchanged = unchanged.join(",");
    let message: OutgoingMessage = { topic, payload, properties };
    if (!this.fits(message)) {
      this.stats.oversize++;
      const replacement = this.replacementFor(message, plan, tx, events, values, "oversize");
      if (!replacement) return;
      message = replacement;
    }
    this.send(message, tx.position, plan, tx, events, values);
  }

  private send(message: OutgoingMessage, position: TrackedPosition, plan: RelationPlan, tx: OpenTransaction, events: PendingBatch["events"], values: TupleValues | null, retry = true): void {
    // Every message goes out through here (events, replacements, dead letters, snapshot markers): the one place to sign.
    if (this.options.signingKey) message = { ...message, properties: signed(this.options.signingKey, message.topic, message.payload, message.properties) };
    this.tracker.sent(position);
    this.stats.messages++;
    this.stats.bytes += message.payload.length;
    this.sink.publish(message, (error) => {
      if (error && retry) {
        // The broker refused it (not authorized, too large): follow the oversize rule once.
        this.stats.rejected++;
        this.logger.warn({ topic: message.topic, lsn: message.properties.lsn, seq: message.properties.seq }, `broker refused an event: ${error.message}`);
        const replacement = this.replacementFor(message, plan, tx, events, values, `refused: ${error.message}`);
        if (replacement) this.send(replacement, position, plan, tx, events, values, false);
      } else if (error) {
        this.stats.skipped++;
        this.logger.error({ topic: message.topic, lsn: message.properties.lsn, seq: message.properties.seq }, `broker refused the replacement event too, skipped: ${error.message}`);
      }
      if (this.tracker.delivered(position)) this.confirm();
    });
    if (!this.sink.hasRoom && this.blocked === null) this.blocked = "sink";
  }

  /** Whether the broker (its Maximum Packet Size) and --max-message-bytes let this message through. */
  private fits(message: OutgoingMessage): boolean {
    const signature = this.options.signingKey ? SIGNATURE_PROPERTY_BYTES : 0;
    return this.sink.messageBytes(message) + signature <= Math.min(this.options.maxMessageBytes, this.sink.maxMessageBytes);
  }

  /** What to publish instead of an event the broker cannot take; null to skip it. */
  private replacementFor(message: OutgoingMessage, plan: RelationPlan, tx: OpenTransaction, events: PendingBatch["events"], values: TupleValues | null, reason: string): OutgoingMessage | null {
    const rule = this.options.onOversize;
    const where = { table: plan.qualifiedName, lsn: tx.lsnText, seq: message.properties.seq, bytes: message.payload.length };
    if (rule === "skip") {
      this.stats.skipped++;
      this.logger.warn(where, `event skipped (${reason}) by --on-oversize skip`);
      return null;
    }
    const dotted = plan.dottedTopic;
    const keysOnly = events.map((e, i) => ({
      ...e,
      objectValue: values && events.length === 1 && i === 0 ? objectJson(plan.deleteColumns, values, null, { separator: plan.style.separator, joined: [] }).json : "{}",
    }));
    const properties = { ...message.properties, "keys-only": "true", reason };
    if (rule === "dead-letter") {
      const full: OutgoingMessage = { topic: this.options.deadLetterTopic, payload: message.payload, properties: { ...properties, "keys-only": "false", "original-topic": message.topic } };
      this.logger.warn(where, `event routed to ${this.options.deadLetterTopic} (${reason})`);
      if (this.fits(full)) return full;
      return { topic: this.options.deadLetterTopic, payload: encodeDatabaseTeraEvent(dotted, tx.commitSeconds, keysOnly), properties: { ...properties, "original-topic": message.topic } };
    }
    this.logger.warn(where, `event published with its keys only (${reason})`);
    return { topic: message.topic, payload: encodeDatabaseTeraEvent(dotted, tx.commitSeconds, keysOnly), properties };
  }

  /** Starts publishing injected events (see InjectedEvents): a tracker position of their own, no xid. */
  private inject(events: InjectedEvents): void {
    const now = Date.now();
    const tx: OpenTransaction = {
      position: this.tracker.open(),
      lsnText: formatLsn(events.lsn),
      xid: 0,
      xidText: "0",
      commitIso: new Date(now).toISOString(),
      commitSeconds: now / 1000,
      seq: 0,
      properties: events.properties,
    };
    this.injected = { events, tx, next: 0 };
  }

  /** Publishes injected events while the sink has room; after the last, closes their position. */
  private publishInjected(): void {
    const work = this.injected!;
    const { plan, items } = work.events;
    while (work.next < items.length && this.blocked === null && !this.failure) {
      const item = items[work.next++]!;
      const seq = work.tx.seq++;
      if ("row" in item) {
        const event = { type: DB_EVENT_TYPE.update, objectType: plan.model, objectValue: objectJson(plan.columns, item.row, null, plan.style).json };
        this.publish(work.tx, plan, "update", seq, [event], null, item.row);
      } else {
        const properties = { lsn: work.tx.lsnText, table: plan.qualifiedName, seq: String(seq), ...work.tx.properties, ...item.marker };
        const payload = encodeDatabaseTeraEvent(plan.dottedTopic, work.tx.commitSeconds, []);
        this.send({ topic: plan.mqttTopic, payload, properties }, work.tx.position, plan, work.tx, [], null, false);
      }
    }
    if (work.next < items.length) return;
    this.injected = null;
    if (this.tracker.close(work.tx.position, work.events.lsn)) this.confirm();
  }

  private confirm(): void {
    const safe = this.tracker.safeLsn;
    this.stats.confirmedLsn = safe;
    this.stream.confirm(safe, this.options.confirmIntervalMs);
    this.options.observer?.onSafeLsn(safe);
  }

  private fail(error: TransientError | FatalError): void {
    if (this.failure) return;
    this.failure = error;
    this.stream.pause();
    this.onFatal(error);
  }
}

function opName(type: number): string {
  return type === 1 ? "create" : type === 2 ? "update" : "delete";
}
