import type { TupleValues } from "../decode/pgoutput.js";
import { COMPACT_STYLE, type ColumnPlan, type ObjectStyle, type RelationPlan } from "./plan.js";

/** The OpenTera operation of a row change; `truncate` is published as a DB_DELETE of everything. */
export type ChangeOp = "create" | "update" | "delete" | "truncate";

/** Every ChangeOp, for code that lists or checks them (the client's op filter, tail's --op). */
export const CHANGE_OPS: readonly ChangeOp[] = ["create", "update", "delete", "truncate"];

/** DatabaseEvent.EventType numbers (messages.md). */
export const DB_EVENT_TYPE: Readonly<Record<ChangeOp, number>> = { create: 1, update: 2, delete: 3, truncate: 3 };

/** The operation a DatabaseEvent.EventType number stands for (a truncate travels as a delete). */
export const OP_OF_DB_EVENT_TYPE: Readonly<Partial<Record<number, Exclude<ChangeOp, "truncate">>>> = { 1: "create", 2: "update", 3: "delete" };

export interface ObjectJson {
  /** JSON object text with the published columns in alphabetical order. */
  readonly json: string;
  /** Keys left out because their unchanged TOASTed value is not in the WAL (null when none). */
  readonly unchanged: string[] | null;
}

/**
 * The pieces of the object being written, reused from row to row and joined once: `+=` on a string
 * allocates a cons string per piece (a dozen for a 4-column row), which the encoder then flattens
 * into a copy anyway (issue 18 allocation profile). Emptied after each row so that no row's
 * values stay reachable. objectJson does not call itself (formatters only format one value).
 */
const pieces: string[] = [];

/**
 * Builds the object of a row: each published column's value, formatted by its type's rule,
 * then the style's appended keys (ObjectShape). `fallback` is the old row under REPLICA
 * IDENTITY FULL, where unchanged TOASTed values are.
 */
export function objectJson(columns: readonly ColumnPlan[], values: TupleValues, fallback?: TupleValues | null, style: ObjectStyle = COMPACT_STYLE): ObjectJson {
  let unchanged: string[] | null = null;
  let first = true;
  const separator = style.separator;
  // Also emptied here: a formatter that threw on the last row left its pieces behind.
  pieces.length = 0;
  pieces.push("{");
  for (let i = 0; i < columns.length; i++) {
    const column = columns[i]!;
    let value = values[column.index];
    if (value === undefined && fallback) value = fallback[column.index];
    if (value === undefined) {
      (unchanged ??= []).push(column.name);
      continue;
    }
    if (column.omit !== "never" && (value === null || (column.omit === "empty" && value === ""))) continue;
    if (!first) pieces.push(separator);
    first = false;
    pieces.push(column.jsonKey, value === null ? "null" : column.format(value));
  }
  for (const key of style.joined) {
    let text = "";
    let complete = true;
    for (let k = 0; k < key.indexes.length; k++) {
      let value = values[key.indexes[k]!];
      if (value === undefined && fallback) value = fallback[key.indexes[k]!];
      if (value === undefined || value === null) {
        complete = false;
        break;
      }
      text += k === 0 ? value : key.separator + value;
    }
    if (!complete) continue;
    if (!first) pieces.push(separator);
    first = false;
    pieces.push(key.jsonKey, key.quote(text));
  }
  pieces.push("}");
  const json = pieces.join("");
  pieces.length = 0;
  return { json, unchanged };
}

export function insertObject(plan: RelationPlan, newValues: TupleValues): ObjectJson {
  return objectJson(plan.columns, newValues, null, plan.style);
}

export function updateObject(plan: RelationPlan, newValues: TupleValues, oldValues: TupleValues | null, oldIsFullRow: boolean): ObjectJson {
  return objectJson(plan.columns, newValues, oldIsFullRow ? oldValues : null, plan.style);
}

/**
 * A delete's object: primary key and delete keys, as far as the old tuple carries them (key
 * columns only, unless REPLICA IDENTITY FULL). Missing ones are simply absent, not null.
 */
export function deleteObject(plan: RelationPlan, oldValues: TupleValues): ObjectJson {
  const present = plan.deleteColumns.filter((c) => isKeyOrFull(plan, c) && oldValues[c.index] !== undefined);
  // OpenTera's delete objects are minimal: no appended keys, only its separators.
  return { json: objectJson(present, oldValues, null, { separator: plan.style.separator, joined: [] }).json, unchanged: null };
}

function isKeyOrFull(plan: RelationPlan, column: ColumnPlan): boolean {
  return plan.relation.replicaIdentity === "f" || (plan.relation.columns[column.index]!.flags & 1) !== 0;
}

/** The object of a truncate: empty, meaning "every object of this model". */
export const TRUNCATE_OBJECT = "{}";
