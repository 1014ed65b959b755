/**
 * The wire shape of every OpenTera message, field number -> wire type, as in proto/*.proto.
 * ts-proto generates no descriptors, and its decoders silently skip a known field that arrives
 * with the wrong wire type, so the validator in validate.ts checks bytes against this table first.
 * test/messages/wire-schema.test.ts compares it with buf's descriptors of proto/ so it cannot drift.
 */

export const WIRE_VARINT = 0;
export const WIRE_FIXED64 = 1;
export const WIRE_LEN = 2;
export const WIRE_FIXED32 = 5;

export type FieldShape =
  | { readonly name: string; readonly wire: typeof WIRE_VARINT | typeof WIRE_FIXED64 | typeof WIRE_FIXED32 }
  | { readonly name: string; readonly wire: typeof WIRE_LEN; readonly content: "string" | "bytes" }
  | { readonly name: string; readonly wire: typeof WIRE_LEN; readonly content: "message"; readonly message: string };

export interface MessageShape {
  readonly fields: ReadonlyMap<number, FieldShape & { readonly repeated?: boolean }>;
  /** Field numbers that must be present (OpenTera structure, not proto3 rules). */
  readonly required: readonly number[];
}

type FieldSpec = readonly [number, string, "varint" | "fixed64" | "fixed32" | "string" | "bytes" | `message:${string}`, ("repeated" | "required")?];

function shape(specs: readonly FieldSpec[]): MessageShape {
  const fields = new Map<number, FieldShape & { repeated?: boolean }>();
  const required: number[] = [];
  for (const [num, name, kind, flag] of specs) {
    const repeated = flag === "repeated";
    if (flag === "required") required.push(num);
    if (kind === "varint") fields.set(num, { name, wire: WIRE_VARINT, repeated });
    else if (kind === "fixed64") fields.set(num, { name, wire: WIRE_FIXED64, repeated });
    else if (kind === "fixed32") fields.set(num, { name, wire: WIRE_FIXED32, repeated });
    else if (kind === "string" || kind === "bytes") fields.set(num, { name, wire: WIRE_LEN, content: kind, repeated });
    else fields.set(num, { name, wire: WIRE_LEN, content: "message", message: kind.slice("message:".length), repeated });
  }
  return { fields, required };
}

const P = "opentera.protobuf.";
export const ANY_TYPE_NAME = "google.protobuf.Any";

/** Keyed by fully-qualified protobuf name. */
export const MESSAGE_SHAPES: ReadonlyMap<string, MessageShape> = new Map<string, MessageShape>([
  // Inside our wrappers an Any without a type_url cannot be routed to a decoder: require it.
  [ANY_TYPE_NAME, shape([[1, "type_url", "string", "required"], [2, "value", "bytes"]])],
  [`${P}TeraMessage`, shape([[1, "message", `message:${ANY_TYPE_NAME}`, "required"]])],
  [`${P}TeraEvent`, shape([
    [1, "header", `message:${P}TeraEvent.Header`, "required"],
    [2, "events", `message:${ANY_TYPE_NAME}`, "repeated"],
  ])],
  [`${P}TeraEvent.Header`, shape([[1, "version", "varint"], [2, "time", "fixed64"], [3, "topic", "string"]])],
  [`${P}TeraModuleMessage`, shape([
    [1, "head", `message:${P}TeraModuleMessage.Header`, "required"],
    [2, "data", `message:${ANY_TYPE_NAME}`, "repeated"],
  ])],
  [`${P}TeraModuleMessage.Header`, shape([
    [1, "version", "varint"], [2, "time", "fixed64"], [3, "seq", "varint"], [4, "source", "string"], [5, "dest", "string"],
  ])],
  [`${P}DatabaseEvent`, shape([[1, "type", "varint"], [2, "object_type", "string"], [3, "object_value", "string"]])],
  [`${P}DeviceEvent`, shape([
    [1, "device_uuid", "string"], [2, "type", "varint"], [3, "device_name", "string"], [4, "device_status", "string"],
  ])],
  [`${P}ParticipantEvent`, shape([
    [1, "participant_uuid", "string"], [2, "type", "varint"], [3, "participant_name", "string"],
    [4, "participant_project_name", "string"], [5, "participant_site_name", "string"],
  ])],
  [`${P}UserEvent`, shape([[1, "user_uuid", "string"], [2, "type", "varint"], [3, "user_fullname", "string"]])],
  [`${P}JoinSessionEvent`, shape([
    [1, "session_url", "string"], [2, "session_creator_name", "string"], [3, "session_uuid", "string"],
    [4, "session_participants", "string", "repeated"], [5, "session_users", "string", "repeated"],
    [6, "session_devices", "string", "repeated"], [7, "join_msg", "string"], [8, "session_parameters", "string"],
    [9, "service_uuid", "string"],
  ])],
  [`${P}JoinSessionReplyEvent`, shape([
    [1, "session_uuid", "string"], [2, "user_uuid", "string"], [3, "participant_uuid", "string"],
    [4, "device_uuid", "string"], [5, "join_reply", "varint"], [6, "reply_msg", "string"],
  ])],
  [`${P}LeaveSessionEvent`, shape([
    [1, "session_uuid", "string"], [2, "service_uuid", "string"], [3, "leaving_participants", "string", "repeated"],
    [4, "leaving_users", "string", "repeated"], [5, "leaving_devices", "string", "repeated"],
  ])],
  [`${P}StopSessionEvent`, shape([[1, "session_uuid", "string"], [2, "service_uuid", "string"]])],
  [`${P}LogEvent`, shape([[1, "level", "varint"], [2, "timestamp", "fixed64"], [3, "sender", "string"], [4, "message", "string"]])],
  [`${P}LoginEvent`, shape([
    [1, "log_header", `message:${P}LogEvent`], [2, "login_type", "varint"], [3, "login_status", "varint"],
    [4, "client_name", "string"], [5, "client_version", "string"], [6, "client_ip", "string"], [7, "os_name", "string"],
    [8, "os_version", "string"], [9, "user_uuid", "string"], [10, "participant_uuid", "string"],
    [11, "device_uuid", "string"], [12, "service_uuid", "string"], [13, "server_endpoint", "string"],
  ])],
  [`${P}RPCMessage`, shape([
    [1, "method", "string"], [2, "reply_to", "string"], [3, "id", "varint"], [4, "timestamp", "fixed64"],
    [5, "args", `message:${P}Value`, "repeated"],
  ])],
  [`${P}Value`, shape([
    [1, "double_value", "fixed64"], [2, "float_value", "fixed32"], [3, "int_value", "varint"], [4, "uint_value", "varint"],
    [5, "bool_value", "varint"], [6, "bytes_value", "bytes"], [7, "string_value", "string"],
  ])],
]);
