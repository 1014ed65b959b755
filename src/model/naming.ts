/**
 * OpenTera's naming rule: the model is the primary key column's name after its first `_`
 * (`t_devices` keyed by `id_device` is `device`). Tables without such a key keep their name.
 */
export function modelNameOf(table: string, primaryKey: readonly string[]): string {
  if (primaryKey.length === 1) {
    const match = /^id_(.+)$/.exec(primaryKey[0]!);
    if (match) return match[1]!;
  }
  return table;
}

const SECRET_MARKERS = ["password", "secret", "token", "certificate", "private_key", "otp"];

/** Whether a column's name looks like it holds a secret (withheld unless a table names it). */
export function looksSecret(column: string): boolean {
  const lower = column.toLowerCase();
  return SECRET_MARKERS.some((marker) => lower.includes(marker));
}

/** Columns published in a delete's object by default, beside the primary key. */
export function isDefaultDeleteKey(column: string): boolean {
  return column.endsWith("_uuid");
}
