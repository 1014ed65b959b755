/**
 * The stream's signature: `tera-cdc run` MACs each message it publishes with a key its consumers
 * share, so that a consumer which acts on the stream (the audit trail, the gateway, a service using
 * the client library) can tell tera-cdc's messages from anything else published on the topic.
 * Pure: no I/O (the key comes in as bytes; config.ts reads the file).
 *
 * What is MACed (docs/security.md spells this out for consumers in other languages):
 *
 *   field(b)  = uint32 big-endian byte length of b, then b
 *   input     = field("tera-cdc-sig-v1") field(topic) field(payload)
 *               uint32 big-endian number of properties
 *               then for each user property except `sig`, sorted by the UTF-8 bytes of its name:
 *               field(name) field(value)
 *   sig       = lowercase hex of HMAC-SHA256(key, input)
 *
 * Every string is UTF-8. The topic is the MQTT topic the message is published on. Every user
 * property takes part (lsn, xid, seq, commit-time, table, op, count, unchanged, keys-only,
 * snapshot, ...), so none can be changed, added or removed without breaking the signature; a
 * property name that occurs twice is refused (tera-cdc never sends one twice).
 */
import { createHmac, timingSafeEqual } from "node:crypto";

/** The user property that carries the signature. */
export const SIGNATURE_PROPERTY = "sig";
/** Domain label, the first field of the MACed bytes: a signature of another scheme never matches. */
export const SIGNATURE_SCHEME = "tera-cdc-sig-v1";
/** What the `sig` property adds to an MQTT packet: identifier, two lengths, name, 64 hex digits. */
export const SIGNATURE_PROPERTY_BYTES = 1 + 2 + SIGNATURE_PROPERTY.length + 2 + 64;
/** Shortest key accepted (bytes): HMAC-SHA256 gains nothing past 64, a short one can be guessed. */
export const MIN_SIGNING_KEY_BYTES = 32;

const SCHEME_FIELD = field(Buffer.from(SIGNATURE_SCHEME));

/** User properties as mqtt.js hands them over: a name given twice arrives as an array. */
export type ReceivedProperties = Readonly<Record<string, string | readonly string[]>>;

export type Verdict =
  | { readonly ok: true }
  /** No `sig` property at all. */
  | { readonly ok: false; readonly reason: "unsigned" }
  /** A `sig` that does not match, or a message that cannot be signed as it stands (a repeated property). */
  | { readonly ok: false; readonly reason: "bad-signature"; readonly detail: string };

/** The signature (the `sig` property's value) of a message about to be published. */
export function sign(key: Uint8Array, topic: string, payload: Uint8Array, properties: Readonly<Record<string, string>>): string {
  const names = sortedNames(Object.keys(properties));
  // Fast path, what tera-cdc publishes: ASCII topic, names and values. Their UTF-8 bytes are their
  // characters, so the bytes before and after the payload are built as two latin1 strings (the
  // 4-byte lengths as characters U+0000-U+00FF) and MACed without a Buffer per field.
  let tail = uint32Text(names.length);
  for (const name of names) {
    const value = properties[name]!;
    tail += uint32Text(name.length) + name + uint32Text(value.length) + value;
  }
  if (!NON_ASCII.test(topic) && !NON_ASCII.test(tail)) {
    const head = `${SCHEME_TEXT}${uint32Text(topic.length)}${topic}${uint32Text(payload.length)}`;
    return createHmac("sha256", key).update(head, "latin1").update(payload).update(tail, "latin1").digest("hex");
  }
  // Everything but the payload is written into one scratch buffer (3 bytes of UTF-8 at most per
  // UTF-16 unit, 4 for each length), so the MAC takes three updates whatever the properties.
  let bound = SCHEME_FIELD.length + 12 + 3 * topic.length;
  for (const name of names) bound += 8 + 3 * (name.length + properties[name]!.length);
  if (scratch.length < bound) scratch = Buffer.allocUnsafe(Math.max(bound, 2 * scratch.length));
  const buffer = scratch;
  let at = SCHEME_FIELD.copy(buffer, 0);
  at = writeField(buffer, at, topic);
  buffer.writeUInt32BE(payload.length, at);
  const head = at + 4;
  at = buffer.writeUInt32BE(names.length, head);
  for (const name of names) {
    at = writeField(buffer, at, name);
    at = writeField(buffer, at, properties[name]!);
  }
  return createHmac("sha256", key).update(buffer.subarray(0, head)).update(payload).update(buffer.subarray(head, at)).digest("hex");
}

const NON_ASCII = /[^\u0000-\u007f]/;
const SCHEME_TEXT = `${uint32Text(SIGNATURE_SCHEME.length)}${SIGNATURE_SCHEME}`;
let scratch = Buffer.allocUnsafe(4096);

/** A uint32 big-endian as four latin1 characters. */
function uint32Text(n: number): string {
  return String.fromCharCode((n >>> 24) & 0xff, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff);
}

/** Writes field(text) at `at`: its UTF-8 length as uint32 big-endian, then its UTF-8 bytes; returns the end. */
function writeField(buffer: Buffer, at: number, text: string): number {
  const written = buffer.write(text, at + 4, "utf8");
  buffer.writeUInt32BE(written, at);
  return at + 4 + written;
}

/** The properties with their `sig` added (a copy): what `run` publishes. */
export function signed(key: Uint8Array, topic: string, payload: Uint8Array, properties: Readonly<Record<string, string>>): Record<string, string> {
  // sign() leaves out any `sig` already there, so the copy's is replaced.
  return { ...properties, [SIGNATURE_PROPERTY]: sign(key, topic, payload, properties) };
}

/** Checks a received message against the key (in constant time). */
export function verify(key: Uint8Array, topic: string, payload: Uint8Array, properties: ReceivedProperties | undefined): Verdict {
  const props = properties ?? {};
  const given = props[SIGNATURE_PROPERTY];
  if (given === undefined) return { ok: false, reason: "unsigned" };
  const plain: Record<string, string> = {};
  for (const name of Object.keys(props)) {
    const value = props[name]!;
    if (typeof value !== "string") return { ok: false, reason: "bad-signature", detail: `user property ${name} given ${value.length} times` };
    if (name !== SIGNATURE_PROPERTY) plain[name] = value;
  }
  if (typeof given !== "string" || !/^[0-9a-f]{64}$/.test(given)) return { ok: false, reason: "bad-signature", detail: "sig is not 64 lowercase hex digits" };
  const expected = Buffer.from(sign(key, topic, payload, plain), "hex");
  if (!timingSafeEqual(expected, Buffer.from(given, "hex"))) return { ok: false, reason: "bad-signature", detail: "sig does not match the message" };
  return { ok: true };
}

function sortedNames(names: string[]): string[] {
  const kept = names.filter((n) => n !== SIGNATURE_PROPERTY);
  // UTF-8 byte order, which other languages get from a plain byte sort. JavaScript sorts UTF-16
  // units, which agrees except for characters beyond U+FFFF (surrogates): compare bytes then.
  if (kept.some((n) => /[\uD800-\uDFFF]/.test(n))) return kept.sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
  return kept.sort();
}

function fieldHeader(length: number): Buffer {
  const header = Buffer.allocUnsafe(4);
  header.writeUInt32BE(length);
  return header;
}

function field(bytes: Buffer): Buffer {
  return Buffer.concat([fieldHeader(bytes.length), bytes]);
}
