/**
 * OpenTera message library: the generated protobuf types (src/messages/generated, do not edit) and
 * a small pure API over them: Any packing, wrapper builders, checked decoding, the fast
 * DatabaseEvent encoder and topic names. See docs/messages.md.
 */
export { Any } from "./generated/google/protobuf/any.js";
export { TeraMessage } from "./generated/TeraMessage.js";
export { TeraEvent, TeraEvent_Header } from "./generated/TeraEvent.js";
export { TeraModuleMessage, TeraModuleMessage_Header } from "./generated/TeraModuleMessage.js";
export { DatabaseEvent, DatabaseEvent_EventType } from "./generated/DatabaseEvent.js";
export { DeviceEvent, DeviceEvent_EventType } from "./generated/DeviceEvent.js";
export { ParticipantEvent, ParticipantEvent_EventType } from "./generated/ParticipantEvent.js";
export { UserEvent, UserEvent_EventType } from "./generated/UserEvent.js";
export { JoinSessionEvent } from "./generated/JoinSessionEvent.js";
export { JoinSessionReplyEvent, JoinSessionReplyEvent_ReplyType } from "./generated/JoinSessionReplyEvent.js";
export { LeaveSessionEvent } from "./generated/LeaveSessionEvent.js";
export { StopSessionEvent } from "./generated/StopSessionEvent.js";
export { LogEvent, LogEvent_LogLevel } from "./generated/LogEvent.js";
export { LoginEvent, LoginEvent_LoginStatus, LoginEvent_LoginType } from "./generated/LoginEvent.js";
export { RPCMessage, Value } from "./generated/RPCMessage.js";

export {
  KNOWN_MESSAGE_NAMES,
  type KnownMessage,
  type KnownMessageName,
  type MessageByName,
  isKnownMessageName,
  typeUrlOf,
  TYPE_URL_PREFIX,
  PROTOBUF_PACKAGE,
} from "./registry.js";
export { MessageDecodeError, type MessageDecodeErrorKind } from "./errors.js";
export type { DecodeOptions } from "./validate.js";
export {
  type DecodeResult,
  decodeMessage,
  decodeRPCMessage,
  decodeTeraEvent,
  decodeTeraMessage,
  encodeMessage,
} from "./codec.js";
export { packAny, unpackAny, type Unpacked } from "./any.js";
export { HEADER_VERSION, type Packable, type TimeInput, teraEvent, teraMessage, teraModuleMessage } from "./envelopes.js";
export { type DatabaseEventFields, encodeDatabaseTeraEvent } from "./database-event-fast.js";
export * from "./topics.js";
