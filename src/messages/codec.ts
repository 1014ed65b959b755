import { MessageDecodeError } from "./errors.js";
import type { RPCMessage } from "./generated/RPCMessage.js";
import type { TeraEvent } from "./generated/TeraEvent.js";
import type { TeraMessage } from "./generated/TeraMessage.js";
import {
  codecOf,
  isKnownMessageName,
  type KnownMessage,
  type KnownMessageName,
  knownNameOf,
  type MessageByName,
  PROTOBUF_PACKAGE,
} from "./registry.js";
import { type DecodeOptions, findWireError } from "./validate.js";

export type DecodeResult<T> = { readonly ok: true; readonly message: T } | { readonly ok: false; readonly error: MessageDecodeError };

/** Protobuf bytes of any OpenTera message (the same bytes as the generated `encode`). */
export function encodeMessage(message: KnownMessage): Uint8Array {
  // The lookup by $type keeps this generic; the cast is safe because the name came from the message.
  const codec = codecOf(knownNameOf(message)) as unknown as { encode(m: KnownMessage): { finish(): Uint8Array } };
  return codec.encode(message).finish();
}

/**
 * Decodes `bytes` as the message `name`. Never throws: bytes that break the rule documented in
 * validate.ts (truncated, malformed, wrong wire types, unknown fields, missing header/type_url)
 * give `{ ok: false, error }` with a MessageDecodeError, so nothing half-decoded is passed on.
 */
export function decodeMessage<N extends KnownMessageName>(
  name: N,
  bytes: Uint8Array,
  options?: DecodeOptions,
): DecodeResult<MessageByName[N]> {
  if (!isKnownMessageName(name)) {
    return { ok: false, error: new MessageDecodeError("unknown-message", String(name), "", 0, "not an OpenTera message name") };
  }
  if (!(bytes instanceof Uint8Array)) {
    return { ok: false, error: new MessageDecodeError("malformed", name, "", 0, "input is not a Uint8Array") };
  }
  const wireError = findWireError(name, `${PROTOBUF_PACKAGE}.${name}`, bytes, options);
  if (wireError !== undefined) return { ok: false, error: wireError };
  try {
    return { ok: true, message: codecOf(name).decode(bytes) };
  } catch (e) {
    // The validator accepted these bytes, so the generated decoder should too; keep the promise
    // of never throwing even if the two ever disagree.
    const detail = e instanceof Error ? e.message : String(e);
    return { ok: false, error: new MessageDecodeError("malformed", name, "", 0, `generated decoder failed: ${detail}`) };
  }
}

export function decodeTeraEvent(bytes: Uint8Array, options?: DecodeOptions): DecodeResult<TeraEvent> {
  return decodeMessage("TeraEvent", bytes, options);
}

export function decodeTeraMessage(bytes: Uint8Array, options?: DecodeOptions): DecodeResult<TeraMessage> {
  return decodeMessage("TeraMessage", bytes, options);
}

export function decodeRPCMessage(bytes: Uint8Array, options?: DecodeOptions): DecodeResult<RPCMessage> {
  return decodeMessage("RPCMessage", bytes, options);
}
