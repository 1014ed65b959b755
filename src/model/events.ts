import type { TupleValues } from "../decode/pgoutput.js";
import type { ColumnPlan, RelationPlan } from "./plan.js";

/** The OpenTera operation of a row change; `truncate` is published as a DB_DELETE of everything. */
export type ChangeOp = "create" | "update" | "delete" | "truncate";

/** DatabaseEvent.EventType numbers (messages.md). */
export const DB_EVENT_TYPE: Readonly<Record<ChangeOp, number>> = { create: 1, update: 2, delete: 3, truncate: 3 };

export interface ObjectJson {
  /** JSON object text with the published columns in alphabetical order. */
  readonly json: string;
  /** Keys left out because their unchanged TOASTed value is not in the WAL (null when none). */
  readonly unchanged: string[] | null;
}

/**
 * Builds the object of a row: each published column's value, formatted by its type's rule.
 * `fallback` is the old row under REPLICA IDENTITY FULL, where unchanged TOASTed values are.
 */
export function objectJson(columns: readonly ColumnPlan[], values: TupleValues, fallback?: TupleValues | null): ObjectJson {
  let json = "{";
  let unchanged: string[] | null = null;
  let first = true;
  for (let i = 0; i < columns.length; i++) {
    const column = columns[i]!;
    let value = values[column.index];
    if (value === undefined && fallback) value = fallback[column.index];
    if (value === undefined) {
      (unchanged ??= []).push(column.name);
      continue;
    }
    if (!first) json += ",";
    first = false;
    json += column.jsonKey;
    json += value === null ? "null" : column.format(value);
  }
  return { json: `${json}}`, unchanged };
}

export function insertObject(plan: RelationPlan, newValues: TupleValues): ObjectJson {
  return objectJson(plan.columns, newValues);
}

export function updateObject(plan: RelationPlan, newValues: TupleValues, oldValues: TupleValues | null, oldIsFullRow: boolean): ObjectJson {
  return objectJson(plan.columns, newValues, oldIsFullRow ? oldValues : null);
}

/**
 * A delete's object: primary key and delete keys, as far as the old tuple carries them (key
 * columns only, unless REPLICA IDENTITY FULL). Missing ones are simply absent, not null.
 */
export function deleteObject(plan: RelationPlan, oldValues: TupleValues): ObjectJson {
  const present = plan.deleteColumns.filter((c) => isKeyOrFull(plan, c) && oldValues[c.index] !== undefined);
  return { json: objectJson(present, oldValues).json, unchanged: null };
}

function isKeyOrFull(plan: RelationPlan, column: ColumnPlan): boolean {
  return plan.relation.replicaIdentity === "f" || (plan.relation.columns[column.index]!.flags & 1) !== 0;
}

/** The object of a truncate: empty, meaning "every object of this model". */
export const TRUNCATE_OBJECT = "{}";
