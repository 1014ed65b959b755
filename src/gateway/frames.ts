import { DatabaseEvent, encodeMessage, teraEvent, teraMessage } from "../messages/index.js";
import type { GatewayEvent } from "./events.js";

/**
 * The gateway's WebSocket protocol, version 1 (pure). Every event is two frames, in this order:
 *
 *  1. a text frame, JSON: {"type":"event","lsn":"0/16B3748","seq":0,"model":"device","op":"update",
 *     "commitTime":"2024-05-01T10:00:00.123456Z","table":"public.t_devices"} (plus "leftView":true
 *     when the row left the client's rights and the event is a keys-only delete);
 *  2. a binary frame: a TeraMessage whose Any holds a TeraEvent (header version 1, time = commit
 *     time, topic = module.TeraServer.DatabaseModule.events.<model>) with exactly one DatabaseEvent:
 *     OpenTera's client format, decodable with any OpenTera protobuf code.
 *
 * A client that only understands OpenTera's format can ignore text frames. Control frames are text
 * frames with another "type": hello, rows, subscribed, position, resync, error (server -> client),
 * and subscribe, unsubscribe (client -> server). See docs/gateway.md.
 */
export const PROTOCOL_VERSION = 1;

export interface EventMeta {
  readonly type: "event";
  readonly lsn: string;
  readonly seq: number;
  readonly model: string;
  readonly op: string;
  readonly commitTime: string;
  readonly table: string;
  readonly leftView?: true;
  /** One of the current rows sent after a subscribe with "rows": true (not a change). */
  readonly initial?: true;
}

export function eventMeta(event: GatewayEvent, leftView: boolean, initial = false): string {
  const meta: EventMeta = {
    type: "event",
    lsn: event.lsnText,
    seq: event.seq,
    model: event.model,
    op: event.op,
    commitTime: event.commitTime,
    table: event.table,
    ...(leftView ? { leftView: true as const } : {}),
    ...(initial ? { initial: true as const } : {}),
  };
  return JSON.stringify(meta);
}

/** The binary frame: TeraMessage{Any(TeraEvent{header, [Any(DatabaseEvent)]})}. */
export function eventBinary(event: GatewayEvent): Uint8Array {
  const databaseEvent: DatabaseEvent = { $type: DatabaseEvent.$type, type: event.type, objectType: event.model, objectValue: event.objectValue };
  return encodeMessage(teraMessage(teraEvent({ topic: event.headerTopic, time: event.time, events: [databaseEvent] })));
}

/** A message from the client, validated; a string is the one-line reason it was refused. */
export type ClientRequest =
  | {
      readonly type: "subscribe";
      readonly models: string[];
      readonly after?: { lsn: string; seq: number };
      readonly session?: string;
      readonly rows?: boolean;
      /** Every row the client holds changed at or after this position (see docs/gateway.md, resume on another instance). */
      readonly origin?: { lsn: string; seq: number };
    }
  | { readonly type: "unsubscribe"; readonly models: string[] };

export function parseClientRequest(text: string): ClientRequest | string {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    return "not JSON: send {\"type\":\"subscribe\",\"models\":[...]}";
  }
  if (raw === null || typeof raw !== "object") return "not a JSON object";
  const r = raw as Record<string, unknown>;
  if (r.type !== "subscribe" && r.type !== "unsubscribe") return `unknown type ${JSON.stringify(r.type)}: expected subscribe or unsubscribe`;
  if (!Array.isArray(r.models) || r.models.length === 0 || r.models.some((m) => typeof m !== "string" || m === "")) {
    return "models must be a non-empty list of model names";
  }
  const models = r.models as string[];
  if (r.type === "unsubscribe") return { type: "unsubscribe", models };
  const position = (value: unknown): { lsn: string; seq: number } | undefined | null => {
    if (value === undefined || value === null) return undefined;
    const a = value as Record<string, unknown>;
    if (typeof a !== "object" || typeof a.lsn !== "string" || !Number.isInteger(a.seq) || (a.seq as number) < 0) return null;
    return { lsn: a.lsn, seq: a.seq as number };
  };
  const after = position(r.after);
  if (after === null) return "after must be {\"lsn\":\"0/16B3748\",\"seq\":0}, the position of the last event seen";
  const origin = position(r.origin);
  if (origin === null) return "origin must be {\"lsn\":\"0/16B3748\",\"seq\":0}, the rows frame's origin (or the first event's position)";
  if (r.session !== undefined && typeof r.session !== "string") return "session must be the string from the hello frame";
  if (r.rows !== undefined && typeof r.rows !== "boolean") return "rows must be true (send the current rows first) or false";
  return {
    type: "subscribe",
    models,
    ...(after ? { after } : {}),
    ...(typeof r.session === "string" ? { session: r.session } : {}),
    ...(r.rows === true ? { rows: true } : {}),
    ...(origin ? { origin } : {}),
  };
}

/** The "position" frame: the newest position, everything visible up to it was sent; null before the first event. */
export function positionFrame(newest: GatewayEvent | undefined): string | null {
  return newest ? JSON.stringify({ type: "position", lsn: newest.lsnText, seq: newest.seq }) : null;
}
