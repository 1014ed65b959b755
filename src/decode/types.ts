/**
 * What tera-cdc knows of a PostgreSQL type: enough to pick the JSON rule for its text form.
 * Rows come from `pg_type`; the built-in ones below let pure code (and the first rows of a
 * stream) work before the catalog has been read.
 */
export interface TypeEntry {
  readonly oid: number;
  readonly name: string;
  /** pg_type.typtype: b base, d domain, e enum, c composite, r range, m multirange, p pseudo. */
  readonly typtype: string;
  /** Element type of an array type, 0 otherwise. */
  readonly elementOid: number;
  /** Base type of a domain, 0 otherwise. */
  readonly baseOid: number;
  /** pg_type.typcategory: `A` for arrays. */
  readonly category: string;
  /** Array element delimiter (`,` for all but box). */
  readonly delimiter: string;
}

export type ValueRule =
  | { readonly rule: "bool" }
  | { readonly rule: "integer" }
  | { readonly rule: "float" }
  | { readonly rule: "numeric" }
  | { readonly rule: "timestamptz" }
  | { readonly rule: "timestamp" }
  | { readonly rule: "date" }
  | { readonly rule: "json" }
  | { readonly rule: "bytea" }
  | { readonly rule: "text" }
  | { readonly rule: "array"; readonly element: ValueRule; readonly delimiter: string };

const SCALAR_RULES: Record<string, ValueRule["rule"]> = {
  bool: "bool",
  int2: "integer",
  int4: "integer",
  int8: "integer",
  oid: "integer",
  xid: "integer",
  cid: "integer",
  float4: "float",
  float8: "float",
  numeric: "numeric",
  timestamptz: "timestamptz",
  timestamp: "timestamp",
  date: "date",
  json: "json",
  jsonb: "json",
  bytea: "bytea",
};

/** Built-in scalar types by OID (stable across PostgreSQL versions), and their array types. */
const BUILTIN: ReadonlyArray<[oid: number, name: string, arrayOid: number]> = [
  [16, "bool", 1000],
  [17, "bytea", 1001],
  [18, "char", 1002],
  [19, "name", 1003],
  [20, "int8", 1016],
  [21, "int2", 1005],
  [23, "int4", 1007],
  [25, "text", 1009],
  [26, "oid", 1028],
  [114, "json", 199],
  [700, "float4", 1021],
  [701, "float8", 1022],
  [790, "money", 791],
  [869, "inet", 1041],
  [1042, "bpchar", 1014],
  [1043, "varchar", 1015],
  [1082, "date", 1182],
  [1083, "time", 1183],
  [1114, "timestamp", 1115],
  [1184, "timestamptz", 1185],
  [1186, "interval", 1187],
  [1266, "timetz", 1270],
  [1700, "numeric", 1231],
  [2950, "uuid", 2951],
  [3802, "jsonb", 3807],
];

export class TypeCatalog {
  private readonly entries = new Map<number, TypeEntry>();
  private readonly rules = new Map<number, ValueRule>();

  constructor(entries: Iterable<TypeEntry> = builtinTypeEntries()) {
    this.add(entries);
  }

  add(entries: Iterable<TypeEntry>): void {
    for (const entry of entries) this.entries.set(entry.oid, entry);
    this.rules.clear();
  }

  has(oid: number): boolean {
    return this.entries.has(oid);
  }

  name(oid: number): string {
    return this.entries.get(oid)?.name ?? `oid ${oid}`;
  }

  /** The JSON rule for a type; unknown types fall back to their text form. */
  ruleOf(oid: number): ValueRule {
    let rule = this.rules.get(oid);
    if (!rule) {
      rule = this.derive(oid, 0);
      this.rules.set(oid, rule);
    }
    return rule;
  }

  private derive(oid: number, depth: number): ValueRule {
    const entry = this.entries.get(oid);
    if (!entry || depth > 16) return { rule: "text" };
    if (entry.category === "A" && entry.elementOid !== 0) {
      const element = this.entries.get(entry.elementOid);
      return { rule: "array", element: this.derive(entry.elementOid, depth + 1), delimiter: element?.delimiter ?? "," };
    }
    if (entry.typtype === "d") return this.derive(entry.baseOid, depth + 1);
    if (entry.typtype === "b") return { rule: SCALAR_RULES[entry.name] ?? "text" } as ValueRule;
    return { rule: "text" };
  }
}

export function builtinTypeEntries(): TypeEntry[] {
  const entries: TypeEntry[] = [];
  for (const [oid, name, arrayOid] of BUILTIN) {
    entries.push({ oid, name, typtype: "b", elementOid: 0, baseOid: 0, category: "X", delimiter: "," });
    entries.push({ oid: arrayOid, name: `_${name}`, typtype: "b", elementOid: oid, baseOid: 0, category: "A", delimiter: "," });
  }
  return entries;
}

/** The catalog query whose rows `TypeCatalog.add` takes (see source/catalog.ts). */
export const TYPE_CATALOG_SQL = `
  SELECT t.oid::int AS oid, t.typname AS name, t.typtype AS typtype, t.typelem::int AS "elementOid",
         t.typbasetype::int AS "baseOid", t.typcategory AS category, t.typdelim AS delimiter
  FROM pg_type t`;
