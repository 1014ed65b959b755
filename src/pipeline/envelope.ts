import type { TrackedPosition } from "../checkpoint/tracker.js";
import type { TupleValues } from "../decode/pgoutput.js";
import { encodeDatabaseTeraEvent } from "../messages/index.js";
import { type ChangeOp, OP_OF_DB_EVENT_TYPE } from "../model/events.js";
import type { RelationPlan } from "../model/plan.js";
import type { OutgoingMessage } from "./ports.js";

/** One DatabaseEvent of a TeraEvent. */
export interface DbEvent {
  readonly type: number;
  readonly objectType: string;
  readonly objectValue: string;
}

/**
 * Where a group of messages belongs in the stream: a transaction (from its Begin), or events
 * injected at a logical message. Its tracker position is confirmed once all its messages are.
 */
export interface StreamContext {
  readonly position: TrackedPosition;
  readonly lsnText: string;
  readonly xid: number;
  readonly xidText: string;
  readonly commitIso: string;
  readonly commitSeconds: number;
  /** Index of the next change (the `seq` property). */
  seq: number;
  /** Added to every message's properties (injected events: `snapshot=<id>`). */
  readonly properties?: Readonly<Record<string, string>>;
}

/**
 * One message on its way to the sink, with what is needed to replace it when it is too large or
 * refused (the oversize rule): its context, plan, events and the row its keys come from.
 */
export interface Envelope {
  readonly context: StreamContext;
  readonly plan: RelationPlan;
  readonly seq: number;
  readonly events: readonly DbEvent[];
  /** The row the keys-only replacement takes its key columns from (a single change), else null. */
  readonly row: TupleValues | null;
  readonly message: OutgoingMessage;
}

/** A change (or a batch of changes of one model) as the message the sink publishes. */
export function changeEnvelope(
  context: StreamContext,
  plan: RelationPlan,
  op: ChangeOp | "batch",
  seq: number,
  events: readonly DbEvent[],
  unchanged: readonly string[] | null,
  row: TupleValues | null,
): Envelope {
  const properties: Record<string, string> = {
    lsn: context.lsnText,
    xid: context.xidText,
    "commit-time": context.commitIso,
    table: plan.qualifiedName,
    seq: String(seq),
    op: op === "batch" ? events.map((e) => OP_OF_DB_EVENT_TYPE[e.type] ?? "delete").join(",") : op,
  };
  if (events.length > 1) properties.count = String(events.length);
  if (context.properties) Object.assign(properties, context.properties);
  if (unchanged) properties.unchanged = unchanged.join(",");
  const payload = encodeDatabaseTeraEvent(plan.dottedTopic, context.commitSeconds, events);
  return { context, plan, seq, events, row, message: { topic: plan.mqttTopic, payload, properties } };
}

/** A marker of injected events: a TeraEvent with no DatabaseEvent, its meaning in the properties. */
export function markerEnvelope(context: StreamContext, plan: RelationPlan, seq: number, marker: Readonly<Record<string, string>>): Envelope {
  const properties = { lsn: context.lsnText, table: plan.qualifiedName, seq: String(seq), ...context.properties, ...marker };
  const payload = encodeDatabaseTeraEvent(plan.dottedTopic, context.commitSeconds, []);
  return { context, plan, seq, events: [], row: null, message: { topic: plan.mqttTopic, payload, properties } };
}
