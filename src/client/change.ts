/**
 * What a consumer gets from one MQTT message of `tera-cdc run`: the TeraEvent decoded, and one
 * typed Change per DatabaseEvent in it, positioned by the message's user properties. Pure: no I/O.
 *
 * A TeraEvent carries several DatabaseEvents when tera-cdc batches (`--batch-events`): the
 * property `count` says how many, `seq` is the first one's index in the transaction and `op` lists
 * each one's operation, comma-separated. A TRUNCATE is a DB_DELETE with object `{}` and op=truncate.
 */
import { decodeTeraEvent, type TeraEvent, unpackAny } from "../messages/index.js";
import { type Lsn, parseLsn } from "../lsn.js";
import { type ChangeOp, OP_OF_DB_EVENT_TYPE } from "../model/events.js";

export { CHANGE_OPS, type ChangeOp } from "../model/events.js";

/** One committed row change (or one TRUNCATE of a table) as tera-cdc published it. */
export interface Change<T = Record<string, unknown>> {
  /** OpenTera model name, e.g. "device" (DatabaseEvent.object_type). */
  readonly model: string;
  readonly op: ChangeOp;
  /** The row as published (for a delete: its key columns; for a truncate: {}). */
  readonly object: T;
  /** The object's JSON exactly as published (big numbers keep every digit here). */
  readonly objectJson: string;
  /** Commit time of the transaction as tera-cdc sent it: ISO 8601 with microseconds and offset, e.g. 2024-05-01T10:00:00.123456+00:00. */
  readonly commitTime: string;
  /** Commit LSN of the transaction, PostgreSQL's spelling (paste into SQL as a pg_lsn); "" over MQTT 3.1.1. */
  readonly lsn: string;
  /** The same LSN as a number, for comparisons; NO_POSITION (-1) over MQTT 3.1.1. */
  readonly lsnValue: Lsn;
  /** Transaction id. */
  readonly xid: number;
  /** 0-based index of this change in its transaction; (lsn, seq) identifies a change. */
  readonly seq: number;
  /** Source table, schema.table. */
  readonly table: string;
  /** Columns left out because PostgreSQL did not send them (unchanged TOASTed values). */
  readonly unchanged: readonly string[];
  /** True when tera-cdc published only the key columns (the full event was too large or refused). */
  readonly keysOnly: boolean;
  /**
   * The snapshot id when this is a row of a snapshot (`tera-cdc snapshot`): the row's current state
   * published as an update (an upsert), not a change committed at `commitTime`. Null for live changes.
   */
  readonly snapshot: string | null;
  /** When this consumer received the message. */
  readonly receivedAt: Date;
  /** MQTT topic the message came on. */
  readonly topic: string;
  /** The decoded TeraEvent, shared by every change of a batched message. */
  readonly teraEvent: TeraEvent;
}

/** A message that is not a tera-cdc DatabaseEvent message; the text says what is wrong with it. */
export class ChangeDecodeError extends Error {
  override readonly name = "ChangeDecodeError";
  constructor(
    readonly topic: string,
    message: string,
  ) {
    super(`message on ${topic}: ${message}`);
  }
}

/** lsnValue of a change received without a position (MQTT 3.1.1 broker). */
export const NO_POSITION: Lsn = -1n;

/**
 * Decodes one MQTT message into its changes. Throws ChangeDecodeError when the payload is not a
 * TeraEvent of DatabaseEvents or the position properties (lsn, seq) are missing or malformed:
 * without them a change could not be deduplicated or ordered.
 */
export function decodeChanges(
  topic: string,
  payload: Uint8Array,
  userProperties: Record<string, string | string[]> | undefined,
  receivedAt: Date,
): Change[] {
  const props = userProperties ?? {};
  const prop = (name: string): string | undefined => {
    const value = props[name];
    return Array.isArray(value) ? value[value.length - 1] : value;
  };
  const decoded = decodeTeraEvent(payload);
  if (!decoded.ok) throw new ChangeDecodeError(topic, `not a TeraEvent: ${decoded.error.message}`);
  const teraEvent = decoded.message;

  const lsnText = prop("lsn");
  // MQTT 3.1.1 carries no user properties at all: the changes then have no position.
  const positionless = lsnText === undefined && Object.keys(props).length === 0;
  if (lsnText === undefined && !positionless) throw new ChangeDecodeError(topic, "no lsn user property (is it published by tera-cdc?)");
  let lsnValue: Lsn = NO_POSITION;
  if (lsnText !== undefined) {
    try {
      lsnValue = parseLsn(lsnText);
    } catch (error) {
      throw new ChangeDecodeError(topic, `user property lsn: ${(error as Error).message}`);
    }
  }
  const firstSeq = positionless ? 0 : wholeNumber(prop("seq"), "seq", topic);
  // A message without `count` holds one change, or none: snapshot markers are TeraEvents without events.
  const count = positionless
    ? teraEvent.events.length
    : prop("count") === undefined
      ? Math.min(teraEvent.events.length, 1)
      : wholeNumber(prop("count"), "count", topic);
  if (count !== teraEvent.events.length) {
    throw new ChangeDecodeError(topic, `user property count says ${count} events, the TeraEvent holds ${teraEvent.events.length}`);
  }
  const xid = prop("xid") === undefined ? 0 : wholeNumber(prop("xid"), "xid", topic);
  const ops = (prop("op") ?? "").split(",");
  const unchanged = prop("unchanged") ? prop("unchanged")!.split(",") : [];
  const common = {
    commitTime: prop("commit-time") ?? new Date((teraEvent.header?.time ?? 0) * 1000).toISOString(),
    lsn: lsnText ?? "",
    lsnValue,
    xid,
    table: prop("table") ?? "",
    unchanged,
    keysOnly: prop("keys-only") === "true",
    snapshot: prop("snapshot") ?? null,
    receivedAt,
    topic,
    teraEvent,
  };

  return teraEvent.events.map((any, index) => {
    const unpacked = unpackAny(any);
    if (unpacked.type !== "DatabaseEvent") {
      const what = unpacked.type === "unknown" || unpacked.type === "invalid" ? `${unpacked.type} ${unpacked.typeUrl}` : unpacked.type;
      throw new ChangeDecodeError(topic, `event ${index} is ${what}, expected a DatabaseEvent`);
    }
    const event = unpacked.message;
    let op: ChangeOp | undefined = OP_OF_DB_EVENT_TYPE[event.type];
    if (op === undefined) throw new ChangeDecodeError(topic, `event ${index} has DatabaseEvent type ${event.type}, expected DB_CREATE, DB_UPDATE or DB_DELETE`);
    if (op === "delete" && ops[index] === "truncate") op = "truncate";
    let object: Record<string, unknown>;
    try {
      object = JSON.parse(event.objectValue) as Record<string, unknown>;
    } catch (error) {
      throw new ChangeDecodeError(topic, `event ${index} object_value is not JSON: ${(error as Error).message}`);
    }
    // Without the op property a truncate is still told apart: a delete always carries its keys.
    if (positionless && op === "delete" && Object.keys(object).length === 0) op = "truncate";
    return { ...common, model: event.objectType, op, object, objectJson: event.objectValue, seq: firstSeq + index };
  });
}

function wholeNumber(text: string | undefined, name: string, topic: string): number {
  if (text === undefined || !/^\d+$/.test(text)) {
    throw new ChangeDecodeError(topic, `user property ${name} is ${JSON.stringify(text)}: expected a whole number`);
  }
  return Number(text);
}

/** The identity of a change across replays: its transaction's commit LSN and its index in it. */
export function changeKey(change: Pick<Change, "lsnValue" | "seq">): string {
  return `${change.lsnValue}:${change.seq}`;
}
