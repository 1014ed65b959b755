/**
 * Conversions between our messages and proto3 canonical JSON (the form Google's json_format reads
 * and writes), used to describe fixture values and to hand expected values to Python.
 * ts-proto's own fromJSON/toJSON do everything except google.protobuf.Any, which canonical JSON
 * writes as {"@type": url, ...fields of the packed message}.
 */
import {
  type Any,
  codecOfName,
  type KnownMessage,
  type KnownMessageName,
  knownNameOfTypeUrl,
  packAny,
  TeraEvent,
  TeraEvent_Header,
  TeraMessage,
  TeraModuleMessage,
  TeraModuleMessage_Header,
  unpackAny,
  type Value,
} from "./imports.js";

type Json = { [key: string]: unknown };

function anyFromJson(json: Json): Any {
  const { "@type": typeUrl, ...fields } = json;
  const name = knownNameOfTypeUrl(String(typeUrl));
  if (name === undefined) throw new Error(`fixture Any of unknown type ${String(typeUrl)}`);
  return packAny(fromCanonicalJson(name, fields));
}

function roundFloats(value: Value): Value {
  // A float field holds a float32: JSON gives the shortest decimal, which is not the same double.
  if (value.argValue?.$case === "floatValue") {
    return { ...value, argValue: { $case: "floatValue", floatValue: Math.fround(value.argValue.floatValue) } };
  }
  return value;
}

export function fromCanonicalJson(name: KnownMessageName, json: Json): KnownMessage {
  switch (name) {
    case "TeraEvent":
      return {
        $type: TeraEvent.$type,
        header: json.header === undefined ? undefined : TeraEvent_Header.fromJSON(json.header),
        events: ((json.events ?? []) as Json[]).map(anyFromJson),
      };
    case "TeraModuleMessage":
      return {
        $type: TeraModuleMessage.$type,
        head: json.head === undefined ? undefined : TeraModuleMessage_Header.fromJSON(json.head),
        data: ((json.data ?? []) as Json[]).map(anyFromJson),
      };
    case "TeraMessage":
      return { $type: TeraMessage.$type, message: json.message === undefined ? undefined : anyFromJson(json.message as Json) };
    case "Value":
      return roundFloats(codecOfName("Value").fromJSON(json));
    case "RPCMessage": {
      const message = codecOfName("RPCMessage").fromJSON(json);
      return { ...message, args: message.args.map(roundFloats) };
    }
    default:
      return codecOfName(name).fromJSON(json);
  }
}

function anyToJson(any: Any): Json {
  const unpacked = unpackAny(any);
  if (unpacked.type === "unknown" || unpacked.type === "invalid") throw new Error(`cannot describe Any ${any.typeUrl}`);
  return { "@type": any.typeUrl, ...toCanonicalJson(unpacked.message) };
}

export function toCanonicalJson(message: KnownMessage): Json {
  switch (message.$type) {
    case TeraEvent.$type:
      return {
        ...(message.header === undefined ? {} : { header: TeraEvent_Header.toJSON(message.header) }),
        events: message.events.map(anyToJson),
      };
    case TeraModuleMessage.$type:
      return {
        ...(message.head === undefined ? {} : { head: TeraModuleMessage_Header.toJSON(message.head) }),
        data: message.data.map(anyToJson),
      };
    case TeraMessage.$type:
      return message.message === undefined ? {} : { message: anyToJson(message.message) };
    default: {
      const codec = codecOfName(knownNameOfTypeUrl(message.$type)!) as { toJSON(m: KnownMessage): unknown };
      return codec.toJSON(message) as Json;
    }
  }
}
