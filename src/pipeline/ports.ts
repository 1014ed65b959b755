/**
 * The interfaces the core (src/pipeline) needs from the world, and nothing else: it imports no
 * adapter, and adapters (src/source, src/sinks/*, src/snapshot) implement these. In-process
 * tests drive the core with fakes of them (test/pipeline).
 *
 *   source ──WalReceiver──▶ pipeline ──EventSink──▶ sink
 *     ▲                      │  ▲
 *     └─────StreamControl────┘  └──StreamObserver (snapshots inject events between transactions)
 */
import type { LogicalMessage, TupleValues } from "../decode/pgoutput.js";
import type { TypeEntry } from "../decode/types.js";
import type { Lsn } from "../lsn.js";
import type { ChangeOp } from "../model/events.js";
import type { RelationPlan } from "../model/plan.js";

// ── Source side ───────────────────────────────────────────────────────────────────────────────

/** What the replication stream delivers to the core, in WAL order. */
export interface WalReceiver {
  /** An XLogData message: one pgoutput message starting at `walStart`. */
  data(walStart: Lsn, payload: Buffer): void;
  /** A primary keepalive: the server has sent everything before `walEnd`. */
  keepalive(walEnd: Lsn, replyRequested: boolean): void;
}

/** The part of the replication stream the core drives. */
export interface StreamControl {
  /** Stop reading: no `data` call arrives until `resume()` (real back-pressure: PostgreSQL holds the WAL). */
  pause(): void;
  resume(): void;
  /** Everything before `lsn` is delivered: PostgreSQL may discard it. Sent at most every `minIntervalMs`. */
  confirm(lsn: Lsn, minIntervalMs?: number): void;
}

/** Catalog reads the core needs for a relation it has not planned yet (types, primary key). */
export interface RelationCatalog {
  types(oids: readonly number[]): Promise<TypeEntry[]>;
  /** Primary key columns in key order; empty when the table has none. */
  primaryKey(relationOid: number): Promise<string[]>;
}

// ── Sink side ─────────────────────────────────────────────────────────────────────────────────

/** One message for the destination: a topic (MQTT topic, Redis channel), bytes and metadata. */
export interface OutgoingMessage {
  readonly topic: string;
  readonly payload: Uint8Array;
  /** Metadata (MQTT 5 user properties); a destination without such a place drops them. */
  readonly properties: Readonly<Record<string, string>>;
}

/**
 * Called exactly once per message: without an error once the destination has it (an MQTT
 * PUBACK, a Redis PUBLISH reply), with one when the destination refused it (the core then
 * follows the oversize rule once). A lost connection is not a refusal: the sink keeps the
 * message and delivers it after reconnecting, or the stream restarts from the confirmed LSN.
 */
export type DeliveryCallback = (error?: Error) => void;

/**
 * Where the core publishes: a bounded window of unacknowledged messages. The core publishes
 * only while `hasRoom`, and when it is false pauses the stream until the `room` event.
 * MQTT (src/sinks/mqtt) and Redis PUBLISH are two implementations of this.
 */
export interface EventSink {
  readonly hasRoom: boolean;
  /** Largest message the destination takes, in `messageBytes` units (Infinity: no limit). */
  readonly maxMessageBytes: number;
  /** What this message weighs against `maxMessageBytes` (framing, topic and properties included). */
  messageBytes(message: OutgoingMessage): number;
  publish(message: OutgoingMessage, done: DeliveryCallback): void;
  /** `room`: publishing may go on. */
  on(event: "room", listener: () => void): unknown;
  off(event: "room", listener: () => void): unknown;
}

/** A sink as the service runs it: connection life cycle and figures around the EventSink. */
export interface SinkConnection extends EventSink {
  /** Says what it is connected to, for the start-up log (`MQTT 5`, `MQTT 3.1.1`, `Redis`). */
  readonly protocol: string;
  readonly connected: boolean;
  readonly messagesInFlight: number;
  /** Resolves at the first connection; reconnects by itself after that. Rejects on a fatal refusal (credentials). */
  connect(): Promise<void>;
  /** Waits until nothing is in flight, at most `timeoutMs`; whether it got there. */
  drained(timeoutMs: number): Promise<boolean>;
  close(): Promise<void>;
}

// ── Observer: snapshots ───────────────────────────────────────────────────────────────────────

/**
 * Watches the stream in order, for logic that lives outside the pipeline (the snapshot watermark
 * method, src/snapshot/): it sees every logical decoding message (`pg_logical_emit_message`) and
 * every row change of a published table, and may place events into the stream at a message.
 */
export interface StreamObserver {
  /** A logical decoding message; the events returned are published right there, before any later WAL. */
  onLogicalMessage(message: LogicalMessage): InjectedEvents | null;
  /** A row change: the tuples the WAL carries (new values, and old key or row when present). */
  onRowChange(plan: RelationPlan, op: ChangeOp, tuples: readonly TupleValues[], xid: number): void;
  /** The safe position moved: everything before `lsn` (injected events included) is acknowledged. */
  onSafeLsn(lsn: Lsn): void;
}

/** One injected item: a row published as DB_UPDATE, or a marker (a TeraEvent with no DatabaseEvent). */
export type InjectedItem = { readonly row: TupleValues } | { readonly marker: Readonly<Record<string, string>> };

/**
 * Events placed into the stream at a logical message (not inside a transaction). They go through
 * the same window and delivery tracker as live events: a tracker position of their own, closed
 * at the message's LSN, so that LSN is confirmed only once the sink has all of them.
 */
export interface InjectedEvents {
  readonly plan: RelationPlan;
  readonly items: readonly InjectedItem[];
  /** User properties added to every message (e.g. `snapshot=<id>`). */
  readonly properties: Readonly<Record<string, string>>;
  /** The logical message's LSN: the events' `lsn` property and their tracker position's end. */
  readonly lsn: Lsn;
}

// ── Logging ───────────────────────────────────────────────────────────────────────────────────

/** The logging the core does (pino's Logger is one); the core loads no logger of its own. */
export interface CoreLog {
  info(fields: object, message: string): void;
  warn(fields: object, message: string): void;
  error(fields: object, message: string): void;
}
