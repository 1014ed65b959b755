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

/** Keys OpenTera computes from the row itself, which the preset writes too. */
const ROW_DERIVED = new Set(["user_name"]);

/**
 * The keys tera-cdc's object carries for one op under the opentera preset, from OpenTera's own:
 * less the keys OpenTera derives from other tables and the secrets (`user_name`, derived from the
 * row, stays); UPDATE lists `deleted_at`, which both leave out unless the row is soft-deleted; on
 * DELETE, the primary key alone where OpenTera sends no DELETE (server_settings).
 */
export function expectedKeys(spec: ModelSpec, op: "create" | "update" | "delete"): string[] {
  let keys: readonly string[];
  if (op === "create") keys = spec.create;
  else if (op === "update") keys = spec.update;
  else keys = spec.delete ?? [spec.pk];
  const left = new Set([...Object.keys(spec.derived_keys).filter((k) => !ROW_DERIVED.has(k)), ...spec.secrets]);
  return [...new Set(keys)].filter((k) => !left.has(k)).sort();
}
