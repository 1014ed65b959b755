import { decodeMessage, encodeMessage } from "./codec.js";
import type { MessageDecodeError } from "./errors.js";
import { Any } from "./generated/google/protobuf/any.js";
import { type KnownMessage, knownNameOf, knownNameOfFullName, type MessageByName, typeUrlOf } from "./registry.js";
import type { DecodeOptions } from "./validate.js";

export type Unpacked =
  | { [N in keyof MessageByName]: { readonly type: N; readonly message: MessageByName[N] } }[keyof MessageByName]
  | { readonly type: "unknown"; readonly typeUrl: string; readonly value: Uint8Array }
  | { readonly type: "invalid"; readonly typeUrl: string; readonly error: MessageDecodeError };

/** Packs an OpenTera message into google.protobuf.Any, type_url type.googleapis.com/opentera.protobuf.<Name>. */
export function packAny(message: KnownMessage): Any {
  return { $type: Any.$type, typeUrl: typeUrlOf(knownNameOf(message)), value: encodeMessage(message) };
}

/**
 * Unpacks an Any by its type_url. As protobuf runtimes do, the type is the part after the last
 * "/", whatever the prefix. Never throws: a type that is not one of the 15 OpenTera messages
 * (including nested types such as TeraEvent.Header) gives "unknown" with the raw value, and a
 * known type whose value does not decode gives "invalid" with the error.
 */
export function unpackAny(any: Any, options?: DecodeOptions): Unpacked {
  const typeUrl = typeof any?.typeUrl === "string" ? any.typeUrl : "";
  const value = any?.value instanceof Uint8Array ? any.value : new Uint8Array(0);
  const name = knownNameOfFullName(typeUrl.slice(typeUrl.lastIndexOf("/") + 1));
  if (name === undefined) return { type: "unknown", typeUrl, value };
  const result = decodeMessage(name, value, options);
  if (!result.ok) return { type: "invalid", typeUrl, error: result.error };
  return { type: name, message: result.message } as Unpacked;
}
