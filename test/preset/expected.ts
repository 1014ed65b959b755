/** One model of spec/opentera/event_fields.json: the keys OpenTera's own events carry. */
export interface ModelSpec {
  readonly table: string;
  readonly pk: string;
  readonly topic: string;
  readonly soft_delete: boolean;
  readonly create: readonly string[];
  readonly update: readonly string[];
  readonly delete: readonly string[] | null;
  readonly secrets: readonly string[];
  readonly secrets_published_by_opentera: Record<string, string>;
  readonly derived_keys: Record<string, string>;
}

/**
 * The keys tera-cdc's object carries for one op under the opentera preset, from OpenTera's own:
 * less the keys OpenTera derives from other tables and the secrets; `deleted_at` also on CREATE
 * (as null: OpenTera leaves the key out while it is NULL); on DELETE, the primary key alone where
 * OpenTera sends no DELETE (server_settings).
 */
export function expectedKeys(spec: ModelSpec, op: "create" | "update" | "delete"): string[] {
  let keys: readonly string[];
  if (op === "create") keys = spec.soft_delete ? [...spec.create, "deleted_at"] : spec.create;
  else if (op === "update") keys = spec.update;
  else keys = spec.delete ?? [spec.pk];
  const left = new Set([...Object.keys(spec.derived_keys), ...spec.secrets]);
  return [...new Set(keys)].filter((k) => !left.has(k)).sort();
}
