/**
 * Why bytes were refused:
 * - "truncated": the bytes end inside a field (a varint, a fixed-width value or a length-delimited
 *   payload runs past the end);
 * - "malformed": not protobuf at all (field number 0, wire type 3/4/6/7, a varint over 10 bytes,
 *   invalid UTF-8 in a string field);
 * - "wrong-type": a field of the schema arrives with another wire type, typically the bytes of
 *   a different message;
 * - "unknown-field": a field number the schema does not have (refused by default, see
 *   DecodeOptions.unknownFields);
 * - "missing-field": structure OpenTera relies on is absent (a TeraEvent without header, an Any
 *   without type_url, ...);
 * - "unknown-message": the message name itself is not one of ours.
 */
export type MessageDecodeErrorKind =
  | "truncated"
  | "malformed"
  | "wrong-type"
  | "unknown-field"
  | "missing-field"
  | "unknown-message";

export class MessageDecodeError extends Error {
  override readonly name = "MessageDecodeError";
  readonly kind: MessageDecodeErrorKind;
  /** The message being decoded at the top level, e.g. "TeraEvent". */
  readonly messageName: string;
  /** Dotted path of the field where decoding stopped, e.g. "events[1].type_url"; "" for the top. */
  readonly fieldPath: string;
  /** Byte offset in the top-level input where the problem was found. */
  readonly offset: number;

  constructor(kind: MessageDecodeErrorKind, messageName: string, fieldPath: string, offset: number, detail: string) {
    const where = fieldPath === "" ? "" : ` in ${fieldPath}`;
    super(`cannot decode ${messageName}: ${kind}${where} at byte ${offset}: ${detail}`.replace(/[\r\n]+/g, " "));
    this.kind = kind;
    this.messageName = messageName;
    this.fieldPath = fieldPath;
    this.offset = offset;
  }
}
