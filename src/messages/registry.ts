import type { BinaryReader, BinaryWriter } from "@bufbuild/protobuf/wire";
import { DatabaseEvent } from "./generated/DatabaseEvent.js";
import { DeviceEvent } from "./generated/DeviceEvent.js";
import { JoinSessionEvent } from "./generated/JoinSessionEvent.js";
import { JoinSessionReplyEvent } from "./generated/JoinSessionReplyEvent.js";
import { LeaveSessionEvent } from "./generated/LeaveSessionEvent.js";
import { LogEvent } from "./generated/LogEvent.js";
import { LoginEvent } from "./generated/LoginEvent.js";
import { ParticipantEvent } from "./generated/ParticipantEvent.js";
import { RPCMessage, Value } from "./generated/RPCMessage.js";
import { StopSessionEvent } from "./generated/StopSessionEvent.js";
import { TeraEvent } from "./generated/TeraEvent.js";
import { TeraMessage } from "./generated/TeraMessage.js";
import { TeraModuleMessage } from "./generated/TeraModuleMessage.js";
import { UserEvent } from "./generated/UserEvent.js";

export const PROTOBUF_PACKAGE = "opentera.protobuf";
export const TYPE_URL_PREFIX = "type.googleapis.com/";

/** Every top-level OpenTera message, by its short name. */
export interface MessageByName {
  TeraMessage: TeraMessage;
  TeraEvent: TeraEvent;
  TeraModuleMessage: TeraModuleMessage;
  DatabaseEvent: DatabaseEvent;
  DeviceEvent: DeviceEvent;
  ParticipantEvent: ParticipantEvent;
  UserEvent: UserEvent;
  JoinSessionEvent: JoinSessionEvent;
  JoinSessionReplyEvent: JoinSessionReplyEvent;
  LeaveSessionEvent: LeaveSessionEvent;
  StopSessionEvent: StopSessionEvent;
  LogEvent: LogEvent;
  LoginEvent: LoginEvent;
  RPCMessage: RPCMessage;
  Value: Value;
}

export type KnownMessageName = keyof MessageByName;
export type KnownMessage = MessageByName[KnownMessageName];

/** What the generated `MessageFns` objects offer that this library uses. */
export interface MessageCodec<T> {
  readonly $type: string;
  encode(message: T, writer?: BinaryWriter): BinaryWriter;
  decode(input: BinaryReader | Uint8Array, length?: number): T;
  fromJSON(object: unknown): T;
  toJSON(message: T): unknown;
}

export const MESSAGE_CODECS: { readonly [N in KnownMessageName]: MessageCodec<MessageByName[N]> } = {
  TeraMessage,
  TeraEvent,
  TeraModuleMessage,
  DatabaseEvent,
  DeviceEvent,
  ParticipantEvent,
  UserEvent,
  JoinSessionEvent,
  JoinSessionReplyEvent,
  LeaveSessionEvent,
  StopSessionEvent,
  LogEvent,
  LoginEvent,
  RPCMessage,
  Value,
};

export const KNOWN_MESSAGE_NAMES: readonly KnownMessageName[] = Object.keys(MESSAGE_CODECS) as KnownMessageName[];

const knownNames: ReadonlySet<string> = new Set(KNOWN_MESSAGE_NAMES);

export function isKnownMessageName(name: string): name is KnownMessageName {
  return knownNames.has(name);
}

/** "opentera.protobuf.DatabaseEvent" -> "DatabaseEvent"; undefined for nested or foreign types. */
export function knownNameOfFullName(fullName: string): KnownMessageName | undefined {
  if (!fullName.startsWith(`${PROTOBUF_PACKAGE}.`)) return undefined;
  const shortName = fullName.slice(PROTOBUF_PACKAGE.length + 1);
  return isKnownMessageName(shortName) ? shortName : undefined;
}

export function knownNameOf(message: KnownMessage): KnownMessageName {
  const name = knownNameOfFullName(message.$type);
  if (name === undefined) throw new TypeError(`not an OpenTera message: $type ${String(message.$type)}`);
  return name;
}

export function codecOf<N extends KnownMessageName>(name: N): MessageCodec<MessageByName[N]> {
  return MESSAGE_CODECS[name];
}

export function typeUrlOf(name: KnownMessageName): string {
  return `${TYPE_URL_PREFIX}${PROTOBUF_PACKAGE}.${name}`;
}
