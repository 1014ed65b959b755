import { FatalError } from "../errors.js";
import type { Lsn } from "../lsn.js";

/**
 * Parser for pgoutput protocol version 1 messages (the payload of XLogData). Values stay in
 * PostgreSQL's text form: turning them into JSON is the value formatter's job, so that no
 * client-side type parser can round a number or drop microseconds on the way.
 */

export interface RelationColumn {
  /** Bit 1: the column is part of the replica identity key. */
  readonly flags: number;
  readonly name: string;
  readonly typeOid: number;
  readonly typeMod: number;
}

/** `d` default (primary key), `n` nothing, `f` full, `i` index. */
export type ReplicaIdentity = "d" | "n" | "f" | "i";

export interface RelationMessage {
  readonly tag: "relation";
  readonly relationOid: number;
  readonly schema: string;
  readonly table: string;
  readonly replicaIdentity: ReplicaIdentity;
  readonly columns: readonly RelationColumn[];
}

/**
 * One column of a tuple: text, `null` for SQL NULL, `undefined` for an unchanged TOASTed value
 * that the WAL does not carry.
 */
export type ColumnValue = string | null | undefined;
export type TupleValues = ColumnValue[];

export interface BeginMessage {
  readonly tag: "begin";
  /** LSN of the commit record: the transaction's identity in the stream. */
  readonly commitLsn: Lsn;
  /** Microseconds since 2000-01-01 UTC. */
  readonly commitTime: bigint;
  readonly xid: number;
}

export interface CommitMessage {
  readonly tag: "commit";
  readonly commitLsn: Lsn;
  /** End of the commit record: the position to confirm once the transaction is delivered. */
  readonly endLsn: Lsn;
  readonly commitTime: bigint;
}

export interface InsertMessage {
  readonly tag: "insert";
  readonly relation: RelationMessage;
  readonly newValues: TupleValues;
}

export interface UpdateMessage {
  readonly tag: "update";
  readonly relation: RelationMessage;
  /** Old key (`K`, replica identity index/default when the key changed) or old row (`O`, FULL). */
  readonly oldValues: TupleValues | null;
  readonly oldIsFullRow: boolean;
  readonly newValues: TupleValues;
}

export interface DeleteMessage {
  readonly tag: "delete";
  readonly relation: RelationMessage;
  readonly oldValues: TupleValues;
  readonly oldIsFullRow: boolean;
}

export interface TruncateMessage {
  readonly tag: "truncate";
  readonly relations: readonly RelationMessage[];
  readonly cascade: boolean;
  readonly restartIdentity: boolean;
}

export interface TypeMessage {
  readonly tag: "type";
  readonly typeOid: number;
  readonly schema: string;
  readonly name: string;
}

export interface LogicalMessage {
  readonly tag: "message";
  readonly transactional: boolean;
  readonly lsn: Lsn;
  readonly prefix: string;
  readonly content: Buffer;
}

export interface OriginMessage {
  readonly tag: "origin";
}

export type PgoutputMessage =
  | BeginMessage
  | CommitMessage
  | RelationMessage
  | TypeMessage
  | InsertMessage
  | UpdateMessage
  | DeleteMessage
  | TruncateMessage
  | LogicalMessage
  | OriginMessage;

export class PgoutputProtocolError extends FatalError {
  override readonly name = "PgoutputProtocolError";
}

/**
 * Keeps the relation cache the protocol relies on: row messages name their table by OID only,
 * after a Relation message described it (again after every schema change).
 */
export class PgoutputDecoder {
  private readonly relations = new Map<number, RelationMessage>();

  relation(oid: number): RelationMessage | undefined {
    return this.relations.get(oid);
  }

  decode(buf: Buffer): PgoutputMessage {
    const reader = new Reader(buf);
    const tag = reader.byte();
    switch (tag) {
      case 0x42 /* B */:
        return { tag: "begin", commitLsn: reader.u64(), commitTime: reader.i64(), xid: reader.u32() };
      case 0x43 /* C */: {
        reader.byte(); // flags, unused
        return { tag: "commit", commitLsn: reader.u64(), endLsn: reader.u64(), commitTime: reader.i64() };
      }
      case 0x52 /* R */:
        return this.decodeRelation(reader);
      case 0x59 /* Y */:
        return { tag: "type", typeOid: reader.u32(), schema: reader.cstring(), name: reader.cstring() };
      case 0x49 /* I */: {
        const relation = this.knownRelation(reader.u32());
        reader.expect(0x4e /* N */);
        return { tag: "insert", relation, newValues: reader.tuple() };
      }
      case 0x55 /* U */: {
        const relation = this.knownRelation(reader.u32());
        let kind = reader.byte();
        let oldValues: TupleValues | null = null;
        const oldIsFullRow = kind === 0x4f; /* O */
        if (kind === 0x4b /* K */ || kind === 0x4f) {
          oldValues = reader.tuple();
          kind = reader.byte();
        }
        if (kind !== 0x4e) throw new PgoutputProtocolError(`update: expected new tuple, got 0x${kind.toString(16)}`);
        return { tag: "update", relation, oldValues, oldIsFullRow, newValues: reader.tuple() };
      }
      case 0x44 /* D */: {
        const relation = this.knownRelation(reader.u32());
        const kind = reader.byte();
        if (kind !== 0x4b && kind !== 0x4f) {
          throw new PgoutputProtocolError(`delete: expected old key or row, got 0x${kind.toString(16)}`);
        }
        return { tag: "delete", relation, oldValues: reader.tuple(), oldIsFullRow: kind === 0x4f };
      }
      case 0x54 /* T */: {
        const count = reader.u32();
        const options = reader.byte();
        const relations: RelationMessage[] = [];
        for (let i = 0; i < count; i++) relations.push(this.knownRelation(reader.u32()));
        return { tag: "truncate", relations, cascade: (options & 1) !== 0, restartIdentity: (options & 2) !== 0 };
      }
      case 0x4d /* M */: {
        const flags = reader.byte();
        const lsn = reader.u64();
        const prefix = reader.cstring();
        const length = reader.u32();
        return { tag: "message", transactional: (flags & 1) !== 0, lsn, prefix, content: reader.bytes(length) };
      }
      case 0x4f /* O */:
        return { tag: "origin" };
      default:
        throw new PgoutputProtocolError(
          `unknown pgoutput message 0x${tag.toString(16)}: tera-cdc speaks protocol version 1 without streaming`,
        );
    }
  }

  private decodeRelation(reader: Reader): RelationMessage {
    const relationOid = reader.u32();
    const schema = reader.cstring() || "pg_catalog";
    const table = reader.cstring();
    const replicaIdentity = String.fromCharCode(reader.byte()) as ReplicaIdentity;
    const count = reader.u16();
    const columns: RelationColumn[] = [];
    for (let i = 0; i < count; i++) {
      columns.push({ flags: reader.byte(), name: reader.cstring(), typeOid: reader.u32(), typeMod: reader.i32() });
    }
    const relation: RelationMessage = { tag: "relation", relationOid, schema, table, replicaIdentity, columns };
    this.relations.set(relationOid, relation);
    return relation;
  }

  private knownRelation(oid: number): RelationMessage {
    const relation = this.relations.get(oid);
    if (!relation) throw new PgoutputProtocolError(`row for relation ${oid} before its Relation message`);
    return relation;
  }
}

class Reader {
  private offset = 0;
  constructor(private readonly buf: Buffer) {}

  private need(n: number): void {
    if (this.offset + n > this.buf.length) {
      throw new PgoutputProtocolError(`pgoutput message truncated at byte ${this.offset} of ${this.buf.length}`);
    }
  }
  byte(): number {
    this.need(1);
    return this.buf[this.offset++]!;
  }
  expect(value: number): void {
    const got = this.byte();
    if (got !== value) throw new PgoutputProtocolError(`expected 0x${value.toString(16)}, got 0x${got.toString(16)}`);
  }
  u16(): number {
    this.need(2);
    const v = this.buf.readUInt16BE(this.offset);
    this.offset += 2;
    return v;
  }
  u32(): number {
    this.need(4);
    const v = this.buf.readUInt32BE(this.offset);
    this.offset += 4;
    return v;
  }
  i32(): number {
    this.need(4);
    const v = this.buf.readInt32BE(this.offset);
    this.offset += 4;
    return v;
  }
  u64(): bigint {
    this.need(8);
    const v = this.buf.readBigUInt64BE(this.offset);
    this.offset += 8;
    return v;
  }
  i64(): bigint {
    this.need(8);
    const v = this.buf.readBigInt64BE(this.offset);
    this.offset += 8;
    return v;
  }
  cstring(): string {
    const end = this.buf.indexOf(0, this.offset);
    if (end < 0) throw new PgoutputProtocolError("unterminated string in pgoutput message");
    const s = this.buf.toString("utf8", this.offset, end);
    this.offset = end + 1;
    return s;
  }
  bytes(n: number): Buffer {
    this.need(n);
    const v = this.buf.subarray(this.offset, this.offset + n);
    this.offset += n;
    return v;
  }
  tuple(): TupleValues {
    const count = this.u16();
    const values: TupleValues = new Array(count);
    for (let i = 0; i < count; i++) {
      const kind = this.byte();
      if (kind === 0x74 /* t */) {
        const length = this.u32();
        this.need(length);
        values[i] = this.buf.toString("utf8", this.offset, this.offset + length);
        this.offset += length;
      } else if (kind === 0x6e /* n */) {
        values[i] = null;
      } else if (kind === 0x75 /* u */) {
        values[i] = undefined;
      } else {
        throw new PgoutputProtocolError(`unsupported tuple column kind 0x${kind.toString(16)} (binary mode is not used)`);
      }
    }
    return values;
  }
}
