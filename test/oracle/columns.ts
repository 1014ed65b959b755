import fc from "fast-check";

/**
 * The oracle's tables: one column per type the value rules name and the ones users have, and an
 * array of each. Values are generated as PostgreSQL input text (passed as parameters, never spliced
 * into SQL) and turned into the column's type by the column's `input` expression.
 */
export interface Column {
  readonly name: string;
  /** SQL type of the column. */
  readonly type: string;
  /** What the oracle applies: the README rule's type name (a domain is given as its base). */
  readonly oracle: { kind: string } | { kind: "array"; element: string };
  /** SQL turning parameter `$n` (text) into the column's value; `$n` is replaced. */
  readonly input: string;
  readonly values: fc.Arbitrary<string | null>;
}

/** Extra DDL the tables need (types of their own). */
export const TYPES_DDL = `
  DO $$ BEGIN
    CREATE TYPE oracle_mood AS ENUM ('happy', 'sad face', 'quo"te', 'bäck\\slash', '😀');
    CREATE DOMAIN oracle_moment AS timestamptz;
    CREATE DOMAIN oracle_count AS int8 CHECK (VALUE IS NULL OR VALUE > -9223372036854775808);
    CREATE TYPE oracle_pair AS (n int4, label text, at timestamptz, flag bool);
  EXCEPTION WHEN duplicate_object THEN NULL; END $$;`;

const AWKWARD = ['"', "\\", "'", "\n", "\r", "\t", "\u0001", "\u001f", "\u007f", "\u2028", "\u2029", "😀", "𝄞", "é", "{", "}", ",", "(", ")", " ", "NULL", "null", "\\x00", "\ufeff"];

/** Text PostgreSQL accepts: any code points but NUL and lone surrogates. */
const text = (maxLength: number): fc.Arbitrary<string> =>
  fc
    .array(fc.oneof(fc.constantFrom(...AWKWARD), fc.string({ unit: "binary", maxLength: 4 }), fc.string({ maxLength: 6 })), { maxLength: Math.max(1, Math.ceil(maxLength / 3)) })
    .map((parts) => [...parts.join("").replaceAll("\u0000", "")].filter((c) => !/^[\ud800-\udfff]$/.test(c)).slice(0, maxLength).join(""));

const pad = (n: number | bigint, width: number) => String(n).padStart(width, "0");

/** A fraction of 0 to 6 digits, often with trailing zeros (`.12`, `.00001`, `.5`). */
const fraction = fc.oneof(
  fc.constant(""),
  fc.integer({ min: 0, max: 999_999 }).map((n) => `.${pad(n, 6)}`),
  fc.integer({ min: 1, max: 99 }).map((n) => `.${pad(n, 2)}`),
  fc.integer({ min: 1, max: 9 }).map((n) => `.0000${n}`),
  fc.integer({ min: 1, max: 9 }).map((n) => `.${n}`),
);

const year = fc.oneof({ weight: 6, arbitrary: fc.integer({ min: 1, max: 9999 }) }, { weight: 1, arbitrary: fc.integer({ min: 10000, max: 200000 }) });
const dateText = fc
  .tuple(year, fc.integer({ min: 1, max: 12 }), fc.integer({ min: 1, max: 28 }), fc.boolean(), fc.integer({ min: 0, max: 9 }))
  .map(([y, m, d, bc, roll]) => `${pad(y, 4)}-${pad(m, 2)}-${pad(d, 2)}${bc && roll === 0 && y <= 4000 ? " BC" : ""}`);
const timeText = fc
  .tuple(fc.integer({ min: 0, max: 23 }), fc.integer({ min: 0, max: 59 }), fc.integer({ min: 0, max: 59 }), fraction)
  .map(([h, m, s, f]) => `${pad(h, 2)}:${pad(m, 2)}:${pad(s, 2)}${f}`);
const offset = fc.oneof(fc.constant("+00"), fc.integer({ min: -14 * 60, max: 14 * 60 }).map((m) => `${m < 0 ? "-" : "+"}${pad(Math.floor(Math.abs(m) / 60), 2)}:${pad(Math.abs(m) % 60, 2)}`));
const infinities = fc.constantFrom("infinity", "-infinity");
/** Timestamps inside PostgreSQL's range (4713 BC to 294276 AD); years past 9999 and BC included. */
const timestampText = fc.oneof(
  { weight: 12, arbitrary: fc.tuple(dateText, timeText).map(([d, t]) => (d.endsWith(" BC") ? `${d.slice(0, -3)} ${t} BC` : `${d} ${t}`)) },
  { weight: 1, arbitrary: infinities },
);
const timestamptzText = fc.oneof(
  { weight: 12, arbitrary: fc.tuple(dateText, timeText, offset).map(([d, t, o]) => (d.endsWith(" BC") ? `${d.slice(0, -3)} ${t}${o} BC` : `${d} ${t}${o}`)) },
  { weight: 1, arbitrary: infinities },
);

const int = (bits: 16 | 32 | 64): fc.Arbitrary<string> => {
  const max = (1n << BigInt(bits - 1)) - 1n;
  const min = -max - 1n;
  return fc.oneof(fc.constantFrom(String(min), String(max), "0", "-1", "1"), fc.bigInt({ min, max }).map(String));
};

const numericText = fc.oneof(
  fc.constantFrom("NaN", "0", "-0.000", "1.50", "0.0000000000000000000000000000000000000001", "Infinity", "-Infinity"),
  fc.tuple(fc.boolean(), fc.bigInt({ min: 0n, max: 10n ** 60n }), fc.integer({ min: 0, max: 40 }), fc.bigInt({ min: 0n, max: 10n ** 30n })).map(
    ([negative, whole, scale, frac]) => `${negative ? "-" : ""}${whole}${scale > 0 ? `.${pad(frac, scale).slice(0, scale)}` : ""}`,
  ),
  fc.bigInt({ min: -(10n ** 130n), max: 10n ** 130n }).map(String),
);

/** Every double, NaN, infinities, -0 and subnormals included; JavaScript's spelling is valid input. */
const float8Text = fc.oneof(fc.constantFrom("NaN", "Infinity", "-Infinity", "-0", "5e-324", "-2.2250738585072014e-308", "1.7976931348623157e+308", "0.1"), fc.double().map((d) => (Object.is(d, -0) ? "-0" : String(d))));
const float4Text = fc.oneof(fc.constantFrom("NaN", "Infinity", "-Infinity", "-0", "1e-45", "3.4028235e+38", "1.17549435e-38", "0.1"), fc.float().map((d) => (Object.is(d, -0) ? "-0" : String(d))));

const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString("hex");
const byteaText = fc.oneof(fc.constant("\\x"), fc.uint8Array({ maxLength: 64 }).map((b) => `\\x${hex(b)}`));

const jsonText = fc.oneof(
  fc.jsonValue({ maxDepth: 4 }).map((v) => JSON.stringify(v)),
  fc.constantFrom(
    '{"big": 123456789012345678901234567890, "small": 1e-400, "neg": -0, "e": 1E+2, "frac": 1.50}',
    '{"esc": "\\u00e9\\u2028\\ud83d\\ude00\\"\\\\", "nested": {"a": [1, [2, [3, {"b": null}]]]}}',
    '[9007199254740993, -9007199254740993, 18446744073709551616]',
    '  {"spaced" :  [ true , false , null ] }  ',
    '"just a string"',
    "3.14159265358979323846264338327950288",
  ),
).filter((t) => !t.includes("\\u0000"));

const ipv4 = fc.tuple(fc.integer({ min: 0, max: 255 }), fc.integer({ min: 0, max: 255 }), fc.integer({ min: 0, max: 255 }), fc.integer({ min: 0, max: 255 })).map((p) => p.join("."));
const ipv6 = fc.array(fc.integer({ min: 0, max: 0xffff }), { minLength: 8, maxLength: 8 }).map((p) => p.map((x) => x.toString(16)).join(":"));
const inetText = fc.oneof(ipv4, ipv6, fc.tuple(ipv4, fc.integer({ min: 0, max: 32 })).map(([a, m]) => `${a}/${m}`), fc.tuple(ipv6, fc.integer({ min: 0, max: 128 })).map(([a, m]) => `${a}/${m}`));
const macText = fc.uint8Array({ minLength: 6, maxLength: 6 }).map((b) => hex(b).match(/../g)!.join(":"));
const moneyText = fc.bigInt({ min: -(10n ** 15n), max: 10n ** 15n }).map((cents) => `${cents < 0n ? "-" : ""}${(cents < 0n ? -cents : cents) / 100n}.${pad((cents < 0n ? -cents : cents) % 100n, 2)}`);
const intervalText = fc
  .tuple(fc.integer({ min: -100, max: 100 }), fc.integer({ min: -11, max: 11 }), fc.integer({ min: -1000, max: 1000 }), fc.boolean(), timeText)
  .map(([y, mo, d, negative, t]) => `${y} years ${mo} mons ${d} days ${negative ? "-" : ""}${t}`);
const moodText = fc.constantFrom("happy", "sad face", 'quo"te', "bäck\\slash", "😀");
const pairJson = fc
  .record({ n: fc.option(fc.integer(), { nil: null }), label: fc.option(text(12), { nil: null }), at: fc.option(timestamptzText.filter((t) => !t.includes("BC")), { nil: null }), flag: fc.option(fc.boolean(), { nil: null }) })
  .map((r) => JSON.stringify(r));

const nullable = (arb: fc.Arbitrary<string>) => fc.option(arb, { nil: null, freq: 8 });

/** Arrays as a JSON list of element texts (null for NULL elements), built into an array in SQL. */
const list = (arb: fc.Arbitrary<string>) => fc.array(fc.option(arb, { nil: null, freq: 5 }), { maxLength: 4 }).map((a) => JSON.stringify(a));
const arrayInput = (elementType: string) =>
  `(SELECT coalesce(array_agg(CASE WHEN jsonb_typeof(e) = 'null' THEN NULL ELSE (e #>> '{}')::${elementType} END ORDER BY o), '{}') FROM jsonb_array_elements($n::jsonb) WITH ORDINALITY AS a(e, o))`;

interface Scalar {
  readonly name: string;
  readonly type: string;
  readonly kind: string;
  readonly values: fc.Arbitrary<string>;
  /** Set for types whose value is built from JSON rather than cast from text. */
  readonly fromJson?: (param: string) => string;
}

const SCALARS: Scalar[] = [
  { name: "bool", type: "bool", kind: "bool", values: fc.constantFrom("true", "false") },
  { name: "int2", type: "int2", kind: "int2", values: int(16) },
  { name: "int4", type: "int4", kind: "int4", values: int(32) },
  { name: "int8", type: "int8", kind: "int8", values: int(64) },
  { name: "numeric", type: "numeric", kind: "numeric", values: numericText },
  { name: "float4", type: "float4", kind: "float4", values: float4Text },
  { name: "float8", type: "float8", kind: "float8", values: float8Text },
  { name: "text", type: "text", kind: "text", values: text(40) },
  { name: "varchar", type: "varchar(20)", kind: "varchar", values: text(20) },
  { name: "char", type: "char(5)", kind: "bpchar", values: text(5) },
  { name: "uuid", type: "uuid", kind: "uuid", values: fc.uuid() },
  { name: "date", type: "date", kind: "date", values: fc.oneof({ weight: 10, arbitrary: dateText }, { weight: 1, arbitrary: infinities }) },
  { name: "time", type: "time", kind: "time", values: timeText },
  { name: "timetz", type: "timetz", kind: "timetz", values: fc.tuple(timeText, offset).map(([t, o]) => `${t}${o}`) },
  { name: "timestamp", type: "timestamp", kind: "timestamp", values: timestampText },
  { name: "timestamptz", type: "timestamptz", kind: "timestamptz", values: timestamptzText },
  { name: "interval", type: "interval", kind: "interval", values: intervalText },
  { name: "json", type: "json", kind: "json", values: jsonText },
  { name: "jsonb", type: "jsonb", kind: "jsonb", values: jsonText },
  { name: "bytea", type: "bytea", kind: "bytea", values: byteaText },
  { name: "inet", type: "inet", kind: "inet", values: inetText },
  { name: "cidr", type: "cidr", kind: "cidr", values: inetText, fromJson: (p) => `network(${p}::inet)` },
  { name: "macaddr", type: "macaddr", kind: "macaddr", values: macText },
  { name: "money", type: "money", kind: "money", values: moneyText },
  { name: "enum", type: "oracle_mood", kind: "oracle_mood", values: moodText },
  // A domain takes its base type's rule: the oracle is told the base.
  { name: "domain", type: "oracle_moment", kind: "timestamptz", values: timestamptzText },
  { name: "domain_int", type: "oracle_count", kind: "int8", values: int(64).filter((v) => v !== "-9223372036854775808") },
  { name: "composite", type: "oracle_pair", kind: "oracle_pair", values: pairJson, fromJson: (p) => `jsonb_populate_record(NULL::oracle_pair, ${p}::jsonb)` },
];

function scalarColumn(s: Scalar): Column {
  return { name: `c_${s.name}`, type: s.type, oracle: { kind: s.kind }, input: s.fromJson ? s.fromJson("$n") : `$n::${s.type}`, values: nullable(s.values) };
}

function arrayColumn(s: Scalar): Column {
  // Element expression from a JSON element `e`.
  const element = s.fromJson ? s.fromJson(s.name === "composite" ? "e" : "(e #>> '{}')") : `(e #>> '{}')::${s.type}`;
  const input = s.fromJson
    ? `(SELECT coalesce(array_agg(CASE WHEN jsonb_typeof(e) = 'null' THEN NULL ELSE ${element} END ORDER BY o), '{}') FROM jsonb_array_elements($n::jsonb) WITH ORDINALITY AS a(e, o))`
    : arrayInput(s.type);
  const values = s.name === "composite" ? fc.array(fc.option(s.values.map((j) => JSON.parse(j) as unknown), { nil: null, freq: 5 }), { maxLength: 3 }).map((a) => JSON.stringify(a)) : list(s.values);
  return { name: `a_${s.name}`, type: `${s.type}[]`, oracle: { kind: "array", element: s.kind }, input, values: nullable(values) };
}

/** Two-dimensional arrays (every row the same length), from a JSON list of lists. */
function matrixColumn(name: string, type: string, kind: string, arb: fc.Arbitrary<string>): Column {
  const values = fc
    .tuple(fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1, max: 3 }))
    .chain(([rows, cols]) => fc.array(fc.array(fc.option(arb, { nil: null, freq: 5 }), { minLength: cols, maxLength: cols }), { minLength: rows, maxLength: rows }))
    .map((m) => JSON.stringify(m));
  const input = `(SELECT array_agg(r ORDER BY o) FROM (SELECT o, (SELECT array_agg(CASE WHEN jsonb_typeof(e) = 'null' THEN NULL ELSE (e #>> '{}')::${type} END ORDER BY p) FROM jsonb_array_elements(row) WITH ORDINALITY AS b(e, p)) AS r FROM jsonb_array_elements($n::jsonb) WITH ORDINALITY AS a(row, o)) m)`;
  return { name, type: `${type}[]`, oracle: { kind: "array", element: kind }, input, values: nullable(values) };
}

export const COLUMNS: readonly Column[] = [
  ...SCALARS.map(scalarColumn),
  ...SCALARS.map(arrayColumn),
  matrixColumn("m_int4", "int4", "int4", int(32)),
  matrixColumn("m_text", "text", "text", text(8)),
  matrixColumn("m_timestamptz", "timestamptz", "timestamptz", timestamptzText),
  // Arrays whose lower bound is not 1 (`[-2:0]={...}`): the bounds are dropped.
  {
    name: "b_int4",
    type: "int4[]",
    oracle: { kind: "array", element: "int4" },
    input: "$n::int4[]",
    values: nullable(fc.tuple(fc.integer({ min: -5, max: 5 }), fc.array(fc.option(int(32), { nil: null, freq: 4 }), { minLength: 1, maxLength: 4 })).map(([lower, xs]) => `[${lower}:${lower + xs.length - 1}]={${xs.map((x) => x ?? "NULL").join(",")}}`)),
  },
];

/** A value large enough to be stored out of line (TOAST, STORAGE EXTERNAL): unchanged by UPDATEs. */
export const BIG = fc.string({ minLength: 3000, maxLength: 4000, unit: "grapheme-ascii" });

/** A row: the generated input text of every column (null for NULL), by column name. */
export type Row = Record<string, string | null>;

export const ROW: fc.Arbitrary<Row> = fc.record(Object.fromEntries(COLUMNS.map((c) => [c.name, c.values])) as Record<string, fc.Arbitrary<string | null>>);
