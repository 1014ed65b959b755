import type { RelationMessage } from "../decode/pgoutput.js";
import type { TypeCatalog } from "../decode/types.js";
import { asciiOnlyJson, formatterFor, type ValueFormatter } from "../decode/values.js";
import { databaseEventTopic, toMqttTopic } from "../messages/topics.js";
import { isDefaultDeleteKey, looksSecret, modelNameOf } from "./naming.js";

/** Per-table settings from the configuration file (all optional). */
export interface TableSettings {
  /** Model name instead of OpenTera's rule. */
  readonly model?: string;
  /** Only these columns are published; naming a secret-looking column here publishes it. */
  readonly columns?: readonly string[];
  /** These columns are never published. */
  readonly exclude?: readonly string[];
  /** Columns a delete's object carries beside the primary key (default: names ending `_uuid`). */
  readonly deleteKeys?: readonly string[];
  /** MQTT topic instead of the model's OpenTera topic; `{model}`, `{schema}`, `{table}` are replaced. */
  readonly topic?: string;
  /** How the object is written beyond its column list: set by presets, not by the config file. */
  readonly objectShape?: ObjectShape;
}

/**
 * What a preset changes in the object text so that it matches another writer's (OpenTera's
 * `json.dumps` of its model dict, docs/opentera-preset.md).
 */
export interface ObjectShape {
  /** Keys left out while the column is NULL (OpenTera's `deleted_at`). */
  readonly omitWhenNull?: readonly string[];
  /** Keys left out while the column is NULL or the empty string (OpenTera's service endpoints). */
  readonly omitWhenEmpty?: readonly string[];
  /**
   * Keys appended after the columns, in this order: the row's texts of `columns` joined by
   * `separator` (OpenTera's `user_name`). Left out when one of them is NULL or not in the WAL.
   */
  readonly joined?: readonly { readonly key: string; readonly columns: readonly string[]; readonly separator: string }[];
  /** Delete objects keep the primary key, then `deleteKeys`, in that order (OpenTera's), not sorted. */
  readonly deleteKeysAsListed?: boolean;
  /** `python`: `json.dumps`' default text: `", "` and `": "`, every non-ASCII character as `\uXXXX`. */
  readonly json?: "compact" | "python";
}

export interface ColumnPlan {
  readonly name: string;
  /** Position in the relation's tuples. */
  readonly index: number;
  /** `"name":` (or `"name": `), escaped once here instead of for every row. */
  readonly jsonKey: string;
  readonly format: ValueFormatter;
  /** When the key is left out: never, while NULL, or while NULL or "" (ObjectShape). */
  readonly omit: "never" | "null" | "empty";
}

/** A key appended after the columns: the texts of the columns at `indexes` joined by `separator`. */
export interface JoinedKeyPlan {
  readonly jsonKey: string;
  readonly indexes: readonly number[];
  readonly separator: string;
  /** Turns the joined text into its JSON string. */
  readonly quote: (text: string) => string;
}

/** How one relation's objects are written: separator between members and keys appended last. */
export interface ObjectStyle {
  /** `,` (compact) or `, ` (Python's json.dumps). */
  readonly separator: string;
  readonly joined: readonly JoinedKeyPlan[];
}

export const COMPACT_STYLE: ObjectStyle = { separator: ",", joined: [] };

/** Everything the hot path needs to turn one relation's tuples into an event, worked out once. */
export interface RelationPlan {
  readonly relation: RelationMessage;
  /** `schema.table` */
  readonly qualifiedName: string;
  readonly model: string;
  /** Published columns in alphabetical order (OpenTera sorts the object's keys). */
  readonly columns: readonly ColumnPlan[];
  /** Separator and appended keys of the objects (ObjectShape). */
  readonly style: ObjectStyle;
  /** The delete object's columns: primary key and delete keys that are published, in order. */
  readonly deleteColumns: readonly ColumnPlan[];
  readonly primaryKey: readonly string[];
  /** Secret-looking columns held back (for the start-up log). */
  readonly withheld: readonly string[];
  /** Delete keys the replica identity does not carry on DELETE (for the start-up warning). */
  readonly deleteKeysUnavailable: readonly string[];
  /** The model's OpenTera topic (`module.TeraServer.DatabaseModule.events.<model>`), for the header. */
  readonly dottedTopic: string;
  /** Where its events are published: the dotted topic in MQTT form, or the table's template. */
  readonly mqttTopic: string;
}

export function byCodePoint(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * @param primaryKey the table's primary key columns (from the catalog; for replica identity
 *   DEFAULT they are exactly the relation's key columns).
 */
export function planRelation(
  relation: RelationMessage,
  primaryKey: readonly string[],
  settings: TableSettings,
  types: TypeCatalog,
): RelationPlan {
  const qualifiedName = `${relation.schema}.${relation.table}`;
  const explicit = settings.columns ? new Set(settings.columns) : undefined;
  const excluded = new Set(settings.exclude ?? []);
  const withheld: string[] = [];
  const columns: ColumnPlan[] = [];
  const shape = settings.objectShape ?? {};
  const python = shape.json === "python";
  const keyText = (name: string) => (python ? `${asciiOnlyJson(JSON.stringify(name))}: ` : `${JSON.stringify(name)}:`);
  const omitNull = new Set(shape.omitWhenNull ?? []);
  const omitEmpty = new Set(shape.omitWhenEmpty ?? []);
  relation.columns.forEach((column, index) => {
    if (excluded.has(column.name)) return;
    if (explicit && !explicit.has(column.name)) return;
    if (!explicit && looksSecret(column.name)) {
      withheld.push(column.name);
      return;
    }
    const format = formatterFor(types.ruleOf(column.typeOid));
    columns.push({
      name: column.name,
      index,
      jsonKey: keyText(column.name),
      format: python ? (text) => asciiOnlyJson(format(text)) : format,
      omit: omitEmpty.has(column.name) ? "empty" : omitNull.has(column.name) ? "null" : "never",
    });
  });
  columns.sort((a, b) => byCodePoint(a.name, b.name));

  const deleteKeyNames = new Set(primaryKey);
  for (const column of relation.columns) {
    const wanted = settings.deleteKeys ? settings.deleteKeys.includes(column.name) : isDefaultDeleteKey(column.name);
    if (wanted) deleteKeyNames.add(column.name);
  }
  let deleteColumns = columns.filter((c) => deleteKeyNames.has(c.name));
  if (shape.deleteKeysAsListed) {
    const order = [...primaryKey, ...(settings.deleteKeys ?? [])];
    const rank = (name: string) => order.indexOf(name);
    deleteColumns = [...deleteColumns].sort((a, b) => rank(a.name) - rank(b.name));
  }
  // On DELETE the WAL carries the replica identity: all columns under FULL, the key otherwise.
  const deleteKeysUnavailable =
    relation.replicaIdentity === "f"
      ? []
      : deleteColumns.filter((c) => (relation.columns[c.index]!.flags & 1) === 0).map((c) => c.name);

  const joined: JoinedKeyPlan[] = [];
  for (const key of shape.joined ?? []) {
    const indexes = key.columns.map((name) => relation.columns.findIndex((c) => c.name === name));
    // A table without one of the columns cannot have the key.
    if (indexes.some((i) => i < 0)) continue;
    const quote = (text: string) => (python ? asciiOnlyJson(JSON.stringify(text)) : JSON.stringify(text));
    joined.push({ jsonKey: keyText(key.key), indexes, separator: key.separator, quote });
  }
  const style: ObjectStyle = python || joined.length > 0 ? { separator: python ? ", " : ",", joined } : COMPACT_STYLE;

  const model = settings.model ?? modelNameOf(relation.table, primaryKey);
  const dottedTopic = databaseEventTopic(model);
  const mqttTopic =
    settings.topic?.replaceAll("{model}", model).replaceAll("{schema}", relation.schema).replaceAll("{table}", relation.table) ??
    toMqttTopic(dottedTopic);
  return {
    relation,
    qualifiedName,
    model,
    columns,
    style,
    deleteColumns,
    primaryKey,
    withheld,
    deleteKeysUnavailable,
    dottedTopic,
    mqttTopic,
  };
}
