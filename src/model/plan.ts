import type { RelationMessage } from "../decode/pgoutput.js";
import type { TypeCatalog } from "../decode/types.js";
import { formatterFor, type ValueFormatter } from "../decode/values.js";
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
}

export interface ColumnPlan {
  readonly name: string;
  /** Position in the relation's tuples. */
  readonly index: number;
  /** `"name":`, escaped once here instead of for every row. */
  readonly jsonKey: string;
  readonly format: ValueFormatter;
}

/** Everything the hot path needs to turn one relation's tuples into an event, worked out once. */
export interface RelationPlan {
  readonly relation: RelationMessage;
  /** `schema.table` */
  readonly qualifiedName: string;
  readonly model: string;
  /** Published columns in alphabetical order (OpenTera sorts the object's keys). */
  readonly columns: readonly ColumnPlan[];
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
  relation.columns.forEach((column, index) => {
    if (excluded.has(column.name)) return;
    if (explicit && !explicit.has(column.name)) return;
    if (!explicit && looksSecret(column.name)) {
      withheld.push(column.name);
      return;
    }
    columns.push({
      name: column.name,
      index,
      jsonKey: `${JSON.stringify(column.name)}:`,
      format: formatterFor(types.ruleOf(column.typeOid)),
    });
  });
  columns.sort((a, b) => byCodePoint(a.name, b.name));

  const deleteKeyNames = new Set(primaryKey);
  for (const column of relation.columns) {
    const wanted = settings.deleteKeys ? settings.deleteKeys.includes(column.name) : isDefaultDeleteKey(column.name);
    if (wanted) deleteKeyNames.add(column.name);
  }
  const deleteColumns = columns.filter((c) => deleteKeyNames.has(c.name));
  // On DELETE the WAL carries the replica identity: all columns under FULL, the key otherwise.
  const deleteKeysUnavailable =
    relation.replicaIdentity === "f"
      ? []
      : deleteColumns.filter((c) => (relation.columns[c.index]!.flags & 1) === 0).map((c) => c.name);

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
    deleteColumns,
    primaryKey,
    withheld,
    deleteKeysUnavailable,
    dottedTopic,
    mqttTopic,
  };
}
