import { MessageDecodeError, type MessageDecodeErrorKind } from "./errors.js";
import { MESSAGE_SHAPES, WIRE_FIXED32, WIRE_FIXED64, WIRE_LEN, WIRE_VARINT } from "./wire-schema.js";

export interface DecodeOptions {
  /**
   * What to do with a field number the schema does not have. "reject" (default) refuses the bytes:
   * the OpenTera schema is fixed, and skipping would let random bytes or another message's bytes
   * through as an all-defaults message. "skip" is protobuf's usual forward-compatible behaviour,
   * for peers running a newer schema; the skipped fields must still be well-formed.
   */
  readonly unknownFields?: "reject" | "skip";
}

const strictUtf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

class Stop {
  constructor(
    readonly kind: MessageDecodeErrorKind,
    readonly path: string,
    readonly offset: number,
    readonly detail: string,
  ) {}
}

/**
 * Walks `bytes` as the message `typeName` and returns why they are not a valid instance, or
 * undefined. The rule, applied recursively to nested messages (not to Any.value, which unpackAny
 * checks against the type its type_url names):
 * - every tag and value is complete and well-formed (wire types 0, 1, 2, 5 only; groups are not
 *   part of any OpenTera message);
 * - a known field has exactly the wire type of the schema (no packed encoding: no OpenTera message
 *   has a repeated scalar), and string fields hold valid UTF-8, as Google's runtimes require;
 * - unknown field numbers are refused unless options.unknownFields is "skip";
 * - the fields marked required in wire-schema.ts are present.
 * Truncation exactly at a field boundary leaves a shorter but valid message: protobuf cannot tell,
 * except where a required field goes missing.
 */
export function findWireError(
  messageName: string,
  typeName: string,
  bytes: Uint8Array,
  options: DecodeOptions = {},
): MessageDecodeError | undefined {
  try {
    walk(bytes, 0, bytes.length, typeName, "", options.unknownFields === "skip", 0);
    return undefined;
  } catch (e) {
    if (e instanceof Stop) return new MessageDecodeError(e.kind, messageName, e.path, e.offset, e.detail);
    throw e;
  }
}

function joinPath(base: string, name: string): string {
  return base === "" ? name : `${base}.${name}`;
}

function walk(
  bytes: Uint8Array,
  start: number,
  end: number,
  typeName: string,
  path: string,
  skipUnknown: boolean,
  depth: number,
): void {
  const shape = MESSAGE_SHAPES.get(typeName);
  if (shape === undefined) throw new Stop("unknown-message", path, start, `no schema for ${typeName}`);
  // The schema has no recursion (depth 3 at most); the guard only documents that it stays bounded.
  if (depth > 16) throw new Stop("malformed", path, start, "nesting too deep");
  const counts = new Map<number, number>();
  let pos = start;
  while (pos < end) {
    const tagStart = pos;
    const [tag, afterTag] = readVarint(bytes, pos, end, path);
    pos = afterTag;
    if (tag > 0xffffffffn) throw new Stop("malformed", path, tagStart, "tag larger than 32 bits");
    const fieldNumber = Number(tag >> 3n);
    const wireType = Number(tag & 7n);
    if (fieldNumber === 0) throw new Stop("malformed", path, tagStart, "field number 0");
    if (wireType !== WIRE_VARINT && wireType !== WIRE_FIXED64 && wireType !== WIRE_LEN && wireType !== WIRE_FIXED32) {
      throw new Stop("malformed", path, tagStart, `wire type ${wireType} is not used by OpenTera messages (no groups)`);
    }
    const field = shape.fields.get(fieldNumber);
    const count = counts.get(fieldNumber) ?? 0;
    counts.set(fieldNumber, count + 1);
    const fieldPath = field === undefined
      ? joinPath(path, `#${fieldNumber}`)
      : joinPath(path, field.repeated ? `${field.name}[${count}]` : field.name);
    if (field === undefined && !skipUnknown) {
      throw new Stop("unknown-field", path, tagStart, `field number ${fieldNumber} (wire type ${wireType}) is not in ${typeName}`);
    }
    if (field !== undefined && field.wire !== wireType) {
      throw new Stop("wrong-type", fieldPath, tagStart, `wire type ${wireType}, expected ${field.wire}`);
    }
    switch (wireType) {
      case WIRE_VARINT:
        pos = readVarint(bytes, pos, end, fieldPath)[1];
        break;
      case WIRE_FIXED64:
      case WIRE_FIXED32: {
        const width = wireType === WIRE_FIXED64 ? 8 : 4;
        if (end - pos < width) throw new Stop("truncated", fieldPath, pos, `${width}-byte value cut short`);
        pos += width;
        break;
      }
      case WIRE_LEN: {
        const [length, afterLength] = readVarint(bytes, pos, end, fieldPath);
        if (length > BigInt(end - afterLength)) {
          throw new Stop("truncated", fieldPath, pos, `length ${length} runs past the end (${end - afterLength} bytes left)`);
        }
        const contentStart = afterLength;
        const contentEnd = afterLength + Number(length);
        if (field !== undefined && field.wire === WIRE_LEN) {
          if (field.content === "message") {
            walk(bytes, contentStart, contentEnd, field.message, fieldPath, skipUnknown, depth + 1);
          } else if (field.content === "string") {
            try {
              strictUtf8.decode(bytes.subarray(contentStart, contentEnd));
            } catch {
              throw new Stop("malformed", fieldPath, contentStart, "string field is not valid UTF-8");
            }
          }
        }
        pos = contentEnd;
        break;
      }
      default:
        throw new Stop("malformed", path, tagStart, `wire type ${wireType} is not used by OpenTera messages`);
    }
  }
  for (const fieldNumber of shape.required) {
    if (!counts.has(fieldNumber)) {
      const name = shape.fields.get(fieldNumber)?.name ?? `#${fieldNumber}`;
      throw new Stop("missing-field", joinPath(path, name), end, `${typeName} needs ${name}`);
    }
  }
}

function readVarint(bytes: Uint8Array, start: number, end: number, path: string): [bigint, number] {
  let value = 0n;
  let shift = 0n;
  let pos = start;
  for (let i = 0; i < 10; i++) {
    if (pos >= end) throw new Stop("truncated", path, pos, "varint cut short");
    const byte = bytes[pos++]!;
    value |= BigInt(byte & 0x7f) << shift;
    if ((byte & 0x80) === 0) return [value, pos];
    shift += 7n;
  }
  throw new Stop("malformed", path, start, "varint longer than 10 bytes");
}
