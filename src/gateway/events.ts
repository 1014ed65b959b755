import { type DatabaseEvent, DatabaseEvent_EventType, decodeTeraEvent, unpackAny } from "../messages/index.js";
import { parseLsn, type Lsn } from "../lsn.js";
import { OP_OF_DB_EVENT_TYPE } from "../model/events.js";

/** One row change as the gateway keeps and forwards it: one DatabaseEvent with its position. */
export interface GatewayEvent {
  /** Commit LSN of the transaction (PostgreSQL spelling) and as a number for comparisons. */
  readonly lsnText: string;
  readonly lsn: Lsn;
  /** Index of the change in its transaction. (lsn, seq) identifies the change. */
  readonly seq: number;
  readonly model: string;
  readonly type: DatabaseEvent_EventType;
  /** create, update, delete or truncate. */
  readonly op: string;
  readonly objectValue: string;
  readonly object: Readonly<Record<string, unknown>>;
  readonly headerTopic: string;
  /** TeraEvent header time, seconds since the epoch (the commit time). */
  readonly time: number;
  readonly commitTime: string;
  readonly table: string;
  /** The snapshot id when the event is a snapshot row (a restated row, not a committed change). */
  readonly snapshot?: string;
  /** Memory the event keeps while held (retainedBytes): what the ring's and the row store's byte bounds count. */
  readonly bytes: number;
}

/** Orders two positions: negative when a is before b. */
export function comparePositions(a: { lsn: Lsn; seq: number }, b: { lsn: Lsn; seq: number }): number {
  if (a.lsn !== b.lsn) return a.lsn < b.lsn ? -1 : 1;
  return a.seq - b.seq;
}

/**
 * Splits one broker message of `tera-cdc run` (a TeraEvent holding one or, with --batch-events,
 * several DatabaseEvents, and the user properties lsn, seq, op, commit-time, table) into row
 * changes. The n-th DatabaseEvent of a batch has seq = seq property + n. Throws an Error naming
 * the problem when the message is not such an event (no lsn property: a broker without MQTT 5).
 */
export function eventsFromMessage(payload: Uint8Array, properties: Readonly<Record<string, string | string[]>>): GatewayEvent[] {
  const prop = (name: string): string | undefined => {
    const v = properties[name];
    return Array.isArray(v) ? v[0] : v;
  };
  const lsnText = prop("lsn");
  if (lsnText === undefined) throw new Error("event without the lsn user property: the broker must speak MQTT 5 and the publisher be tera-cdc run");
  const lsn = parseLsn(lsnText);
  const firstSeq = Number(prop("seq") ?? "0");
  if (!Number.isInteger(firstSeq) || firstSeq < 0) throw new Error(`event with a bad seq property ${JSON.stringify(prop("seq"))}`);
  const decoded = decodeTeraEvent(payload);
  if (!decoded.ok) throw new Error(`undecodable TeraEvent: ${decoded.error.message}`);
  const teraEvent = decoded.message;
  const ops = (prop("op") ?? "").split(",");
  const out: GatewayEvent[] = [];
  teraEvent.events.forEach((any, index) => {
    const unpacked = unpackAny(any);
    if (unpacked.type !== "DatabaseEvent") throw new Error(`TeraEvent holds a ${unpacked.type}, expected DatabaseEvent`);
    const db: DatabaseEvent = unpacked.message;
    let object: Record<string, unknown>;
    try {
      const parsed: unknown = JSON.parse(db.objectValue);
      object = parsed !== null && typeof parsed === "object" && !Array.isArray(parsed) ? (parsed as Record<string, unknown>) : {};
    } catch {
      throw new Error(`DatabaseEvent of ${db.objectType} whose object_value is not JSON`);
    }
    const op = ops.length === teraEvent.events.length ? ops[index]! : ops[0] === "truncate" ? "truncate" : (OP_OF_DB_EVENT_TYPE[db.type] ?? "unknown");
    out.push({
      lsnText,
      lsn,
      seq: firstSeq + index,
      model: db.objectType,
      type: db.type,
      op,
      objectValue: db.objectValue,
      object,
      headerTopic: teraEvent.header?.topic ?? "",
      time: teraEvent.header?.time ?? 0,
      commitTime: prop("commit-time") ?? "",
      table: prop("table") ?? "",
      ...(prop("snapshot") !== undefined ? { snapshot: prop("snapshot") } : {}),
      bytes: retainedBytes(db.objectValue),
    });
  });
  return out;
}

/**
 * What an event keeps in memory while the gateway holds it, in bytes: an upper estimate, which the
 * ring's and the row store's byte bounds count so that their defaults fit the command's heap cap
 * (bin/tera-cdc.js). The object text and the object parsed from it are two copies of its
 * characters on the heap, one byte a character when all are Latin-1, else two; the frames encoded
 * from it, about its UTF-8 size outside the heap; and the event's fixed fields.
 * test/gateway/memory.test.ts measures it against V8's own heap figures.
 */
export function retainedBytes(objectValue: string): number {
  const utf8 = Buffer.byteLength(objectValue, "utf8");
  const perCharacter = utf8 === objectValue.length || !BEYOND_LATIN1.test(objectValue) ? 1 : 2;
  return 2 * perCharacter * objectValue.length + utf8 + 1024;
}

const BEYOND_LATIN1 = /[^\u0000-\u00ff]/;
