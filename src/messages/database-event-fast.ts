/**
 * The hot path of tera-cdc: one TeraEvent of Any-packed DatabaseEvents per row change, at tens of
 * thousands per second. This writes the bytes directly, in one allocation, with the constant parts
 * (header version, the Any type_url field) precomputed. The result is byte for byte what
 * `encodeMessage(teraEvent({ topic, time, events: [databaseEvent, ...] }))` gives (proved by a
 * property test in test/messages/database-event-fast.test.ts), which means it also copies ts-proto's
 * proto3 rules: fields equal to their default (0, "", and -0 for the time) are left out.
 */
import type { DatabaseEvent_EventType } from "./generated/DatabaseEvent.js";
import { typeUrlOf } from "./registry.js";

export interface DatabaseEventFields {
  readonly type: DatabaseEvent_EventType;
  readonly objectType: string;
  readonly objectValue: string;
}

const textEncoder = new TextEncoder();

// Tags: (field number << 3) | wire type.
const TAG_HEADER = 0x0a; // TeraEvent.header, LEN
const TAG_EVENTS = 0x12; // TeraEvent.events, LEN
const TAG_TIME = 0x11; // Header.time, I64
const TAG_TOPIC = 0x1a; // Header.topic, LEN
const TAG_ANY_VALUE = 0x12; // Any.value, LEN
const TAG_DB_TYPE = 0x08; // DatabaseEvent.type, VARINT
const TAG_DB_OBJECT_TYPE = 0x12; // DatabaseEvent.object_type, LEN
const TAG_DB_OBJECT_VALUE = 0x1a; // DatabaseEvent.object_value, LEN

/** Header.version = 1: tag 0x08, varint 1. */
const VERSION_FIELD = Uint8Array.of(0x08, 0x01);
/** Any.type_url field, complete: tag, length, "type.googleapis.com/opentera.protobuf.DatabaseEvent". */
const TYPE_URL_FIELD = (() => {
  const url = textEncoder.encode(typeUrlOf("DatabaseEvent"));
  return Uint8Array.of(0x0a, url.length, ...url); // 51 bytes: a one-byte length
})();

// Topics and model names repeat on every row: keep their UTF-8 bytes.
const STRING_CACHE_LIMIT = 4096;
const stringCache = new Map<string, Uint8Array>();
function cachedUtf8(text: string): Uint8Array {
  let bytes = stringCache.get(text);
  if (bytes === undefined) {
    if (stringCache.size >= STRING_CACHE_LIMIT) stringCache.clear();
    bytes = textEncoder.encode(text);
    stringCache.set(text, bytes);
  }
  return bytes;
}

/**
 * Node's Buffer where there is one: its native UTF-8 length and write are several times faster
 * than a JavaScript loop and TextEncoder on long rows (bench profile). The browser (the gateway's
 * live page bundles this library) takes the portable path.
 */
interface NodeBufferApi {
  byteLength(text: string, encoding: "utf8"): number;
  allocUnsafe(size: number): Uint8Array & { write(text: string, offset: number, length: number, encoding: "utf8"): number };
}
const NodeBuffer = (globalThis as { Buffer?: NodeBufferApi }).Buffer;

function utf8Length(text: string): number {
  return NodeBuffer ? NodeBuffer.byteLength(text, "utf8") : portableUtf8Length(text);
}

/** UTF-8 length as TextEncoder writes it (a lone surrogate becomes U+FFFD, 3 bytes). */
function portableUtf8Length(text: string): number {
  const n = text.length;
  let length = n;
  for (let i = 0; i < n; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x80) continue;
    if (c < 0x800) {
      length += 1;
    } else if (c >= 0xd800 && c <= 0xdbff && i + 1 < n && (text.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      length += 2; // a surrogate pair: 2 code units, 4 bytes
      i++;
    } else {
      length += 2;
    }
  }
  return length;
}

// Module-level rather than closures per call: tsx/esbuild (keepNames) wraps every named closure in
// a __name() call, which took 3% of tera-cdc's CPU in the issue 5 profile.
function putVarint(out: Uint8Array, pos: number, value: number): number {
  while (value > 0x7f) {
    out[pos++] = (value & 0x7f) | 0x80;
    value >>>= 7;
  }
  out[pos++] = value;
  return pos;
}

function putBytes(out: Uint8Array, pos: number, bytes: Uint8Array): number {
  out.set(bytes, pos);
  return pos + bytes.length;
}

function varintLength(value: number): number {
  // value is a non-negative length below 2^31
  if (value < 0x80) return 1;
  if (value < 0x4000) return 2;
  if (value < 0x200000) return 3;
  if (value < 0x10000000) return 4;
  return 5;
}

function enumLength(value: number): number {
  // int32 on the wire: negative values are sign-extended to 64 bits, 10 bytes.
  return value < 0 ? 10 : varintLength(value);
}

function lengthDelimitedSize(contentLength: number): number {
  return 1 + varintLength(contentLength) + contentLength;
}

// Per-event sizes computed in the first pass, reused in the second: [dbLength, typeLength, valueLength].
let scratch = new Int32Array(3 * 64);
const timeScratch = new Float64Array(1);
const timeScratchBytes = new Uint8Array(timeScratch.buffer);
const littleEndian = new Uint8Array(Uint16Array.of(1).buffer)[0] === 1;

export function encodeDatabaseTeraEvent(
  topic: string,
  timeSeconds: number,
  events: ReadonlyArray<DatabaseEventFields>,
): Uint8Array {
  const count = events.length;
  if (scratch.length < 3 * count) scratch = new Int32Array(3 * count * 2);
  const sizes = scratch;

  const topicBytes = cachedUtf8(topic);
  const writeTime = timeSeconds !== 0; // also false for -0, as in ts-proto
  const headerLength = VERSION_FIELD.length + (writeTime ? 9 : 0) + (topicBytes.length > 0 ? lengthDelimitedSize(topicBytes.length) : 0);
  let total = lengthDelimitedSize(headerLength);

  for (let i = 0; i < count; i++) {
    const event = events[i]!;
    const type = event.type;
    if ((type | 0) !== type) throw new RangeError(`invalid int32: ${String(type)}`);
    const typeLength = cachedUtf8(event.objectType).length;
    const valueLength = utf8Length(event.objectValue);
    const dbLength =
      (type !== 0 ? 1 + enumLength(type) : 0) +
      (typeLength > 0 ? lengthDelimitedSize(typeLength) : 0) +
      (valueLength > 0 ? lengthDelimitedSize(valueLength) : 0);
    sizes[3 * i] = dbLength;
    sizes[3 * i + 1] = typeLength;
    sizes[3 * i + 2] = valueLength;
    const anyLength = TYPE_URL_FIELD.length + (dbLength > 0 ? lengthDelimitedSize(dbLength) : 0);
    total += lengthDelimitedSize(anyLength);
  }

  const out = NodeBuffer ? NodeBuffer.allocUnsafe(total) : new Uint8Array(total);
  let pos = 0;

  out[pos++] = TAG_HEADER;
  pos = putVarint(out, pos, headerLength);
  pos = putBytes(out, pos, VERSION_FIELD);
  if (writeTime) {
    out[pos++] = TAG_TIME;
    timeScratch[0] = timeSeconds;
    if (littleEndian) {
      out.set(timeScratchBytes, pos);
    } else {
      for (let b = 0; b < 8; b++) out[pos + b] = timeScratchBytes[7 - b]!;
    }
    pos += 8;
  }
  if (topicBytes.length > 0) {
    out[pos++] = TAG_TOPIC;
    pos = putVarint(out, pos, topicBytes.length);
    pos = putBytes(out, pos, topicBytes);
  }

  for (let i = 0; i < count; i++) {
    const event = events[i]!;
    const dbLength = sizes[3 * i]!;
    const typeLength = sizes[3 * i + 1]!;
    const valueLength = sizes[3 * i + 2]!;
    out[pos++] = TAG_EVENTS;
    pos = putVarint(out, pos, TYPE_URL_FIELD.length + (dbLength > 0 ? lengthDelimitedSize(dbLength) : 0));
    pos = putBytes(out, pos, TYPE_URL_FIELD);
    if (dbLength === 0) continue;
    out[pos++] = TAG_ANY_VALUE;
    pos = putVarint(out, pos, dbLength);
    const type = event.type;
    if (type !== 0) {
      out[pos++] = TAG_DB_TYPE;
      if (type > 0) {
        pos = putVarint(out, pos, type);
      } else {
        // Two's complement over 64 bits: low 32 bits, then all-ones high bits.
        let low = type >>> 0;
        for (let b = 0; b < 4; b++) {
          out[pos++] = (low & 0x7f) | 0x80;
          low >>>= 7;
        }
        out[pos++] = (low & 0x0f) | 0x70 | 0x80; // bits 28-31 plus the first sign bits 32-34
        for (let b = 0; b < 4; b++) out[pos++] = 0xff;
        out[pos++] = 0x01;
      }
    }
    if (typeLength > 0) {
      out[pos++] = TAG_DB_OBJECT_TYPE;
      pos = putVarint(out, pos, typeLength);
      pos = putBytes(out, pos, cachedUtf8(event.objectType));
    }
    if (valueLength > 0) {
      out[pos++] = TAG_DB_OBJECT_VALUE;
      pos = putVarint(out, pos, valueLength);
      const value = event.objectValue;
      // Short ASCII: a byte loop beats the native call; longer text: TextEncoder.encodeInto (measured).
      if (valueLength === value.length && valueLength < 48) {
        for (let c = 0; c < valueLength; c++) out[pos + c] = value.charCodeAt(c);
      } else if ("write" in out) {
        out.write(value, pos, valueLength, "utf8");
      } else {
        textEncoder.encodeInto(value, out.subarray(pos, pos + valueLength));
      }
      pos += valueLength;
    }
  }
  return out;
}
