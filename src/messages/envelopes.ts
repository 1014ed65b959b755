import { packAny } from "./any.js";
import { Any } from "./generated/google/protobuf/any.js";
import { TeraEvent, TeraEvent_Header } from "./generated/TeraEvent.js";
import { TeraMessage } from "./generated/TeraMessage.js";
import { TeraModuleMessage, TeraModuleMessage_Header } from "./generated/TeraModuleMessage.js";
import type { KnownMessage } from "./registry.js";

/** OpenTera's current header version for TeraEvent and TeraModuleMessage. */
export const HEADER_VERSION = 1;

/** Seconds since the Unix epoch with fraction (OpenTera's header time), or a Date. */
export type TimeInput = number | Date;

export type Packable = KnownMessage | Any;

export function toEpochSeconds(time: TimeInput | undefined): number {
  if (time === undefined) return Date.now() / 1000;
  if (time instanceof Date) return time.getTime() / 1000;
  return time;
}

function toAny(message: Packable): Any {
  return message.$type === Any.$type ? (message as Any) : packAny(message as KnownMessage);
}

/** A TeraEvent: header {version 1, time, topic} and the events packed into Any (Any passed as is). */
export function teraEvent(input: { topic: string; time?: TimeInput; events: ReadonlyArray<Packable> }): TeraEvent {
  const header: TeraEvent_Header = {
    $type: TeraEvent_Header.$type,
    version: HEADER_VERSION,
    time: toEpochSeconds(input.time),
    topic: input.topic,
  };
  return { $type: TeraEvent.$type, header, events: input.events.map(toAny) };
}

/** A TeraMessage holding one packed message. */
export function teraMessage(message: Packable): TeraMessage {
  return { $type: TeraMessage.$type, message: toAny(message) };
}

/** A TeraModuleMessage: head {version 1, time, seq, source, dest} and the data packed into Any. */
export function teraModuleMessage(input: {
  seq: number;
  source: string;
  dest: string;
  time?: TimeInput;
  data: ReadonlyArray<Packable>;
}): TeraModuleMessage {
  const head: TeraModuleMessage_Header = {
    $type: TeraModuleMessage_Header.$type,
    version: HEADER_VERSION,
    time: toEpochSeconds(input.time),
    seq: input.seq,
    source: input.source,
    dest: input.dest,
  };
  return { $type: TeraModuleMessage.$type, head, data: input.data.map(toAny) };
}
