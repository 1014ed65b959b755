/**
 * A snapshot's row filter as data, never as SQL: conditions `{column, op, value}` joined by AND.
 * Callers send it as JSON; `tera-cdc snapshot --where "id_site = 3"` parses a friendly text into
 * it. Columns are checked against the model's published columns, values travel as bind
 * parameters, so a filter can only narrow the rows of one table. Pure: no I/O.
 */

export const FILTER_OPERATORS = ["=", "<>", "<", "<=", ">", ">=", "in", "is null", "is not null"] as const;
export type FilterOperator = (typeof FILTER_OPERATORS)[number];
export type FilterValue = string | number | boolean;

export interface FilterCondition {
  readonly column: string;
  readonly op: FilterOperator;
  /** A scalar for comparisons, a non-empty list for `in`, absent for `is null` / `is not null`. */
  readonly value?: FilterValue | readonly FilterValue[];
}

export type SnapshotFilter = readonly FilterCondition[];

/** Limits that keep a filter small enough to log, store and report whole. */
export const FILTER_LIMITS = { conditions: 16, inValues: 100, valueLength: 256 } as const;

/** A filter the caller got wrong; the message names the problem and the fix. */
export class FilterError extends Error {
  override readonly name = "FilterError";
}

const SHAPE = 'a JSON list of conditions such as [{"column":"id_site","op":"=","value":3}]';

function checkValue(value: unknown, where: string): FilterValue {
  if (typeof value === "number") {
    if (!Number.isFinite(value)) throw new FilterError(`${where}: a number must be finite`);
    return value;
  }
  if (typeof value === "boolean") return value;
  if (typeof value === "string") {
    if (value.length > FILTER_LIMITS.valueLength) throw new FilterError(`${where}: a text value may have at most ${FILTER_LIMITS.valueLength} characters`);
    if (value.includes("\u0000")) throw new FilterError(`${where}: a text value may not contain NUL`);
    return value;
  }
  throw new FilterError(`${where}: a value must be a string, a number or a boolean (use "is null" for null)`);
}

/**
 * Checks an untrusted filter (already JSON-parsed) against the columns a caller may filter on:
 * the model's published columns (secret and excluded columns are not among them).
 */
export function checkFilter(raw: unknown, columns: readonly string[]): SnapshotFilter {
  if (!Array.isArray(raw)) throw new FilterError(`the filter must be ${SHAPE}`);
  if (raw.length === 0) throw new FilterError("the filter has no conditions: leave it out to snapshot every row");
  if (raw.length > FILTER_LIMITS.conditions) throw new FilterError(`the filter has ${raw.length} conditions: at most ${FILTER_LIMITS.conditions}`);
  return raw.map((item: unknown, i): FilterCondition => {
    const where = `condition ${i + 1}`;
    if (item === null || typeof item !== "object" || Array.isArray(item)) throw new FilterError(`${where} must be an object {column, op, value}`);
    const { column, op, value, ...rest } = item as Record<string, unknown>;
    const extra = Object.keys(rest);
    if (extra.length > 0) throw new FilterError(`${where} has unknown key ${JSON.stringify(extra[0]!.slice(0, 40))}: only column, op and value`);
    if (typeof column !== "string" || !columns.includes(column)) {
      const named = typeof column === "string" ? `"${column.slice(0, 64)}"` : "(missing)";
      throw new FilterError(`${where}: column ${named} is not one of the model's published columns: ${columns.join(", ")}`);
    }
    if (typeof op !== "string" || !(FILTER_OPERATORS as readonly string[]).includes(op)) {
      throw new FilterError(`${where}: op must be one of ${FILTER_OPERATORS.map((o) => `"${o}"`).join(", ")}`);
    }
    const operator = op as FilterOperator;
    if (operator === "is null" || operator === "is not null") {
      if (value !== undefined && value !== null) throw new FilterError(`${where}: "${operator}" takes no value`);
      return { column, op: operator };
    }
    if (operator === "in") {
      if (!Array.isArray(value) || value.length === 0) throw new FilterError(`${where}: "in" needs a non-empty list of values`);
      if (value.length > FILTER_LIMITS.inValues) throw new FilterError(`${where}: "in" takes at most ${FILTER_LIMITS.inValues} values`);
      return { column, op: operator, value: value.map((v) => checkValue(v, where)) };
    }
    if (value === undefined || value === null) throw new FilterError(`${where}: "${operator}" needs a value (use "is null" to match nulls)`);
    return { column, op: operator, value: checkValue(value, where) };
  });
}

/** Reads the JSON a caller sent; a bad document is a FilterError. */
export function parseFilterJson(text: string, columns: readonly string[]): SnapshotFilter {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw new FilterError(`the filter is not JSON: give ${SHAPE} (tera-cdc snapshot --where "id_site = 3" writes it for you)`);
  }
  return checkFilter(raw, columns);
}

/** An SQL identifier, quoted (the one quoting of names in snapshots' SQL). */
export function quoteIdent(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

function parameterText(value: FilterValue): string {
  return typeof value === "string" ? value : String(value);
}

/**
 * SQL text of a checked filter: quoted column names (from the checked list), operators from the
 * fixed set, every value a parameter numbered from `firstParameter`. PostgreSQL types each
 * parameter from its column (`col = $3`, `col = ANY($3)`), so "3" compares as an integer with an
 * integer column and as text with a text column.
 */
export function filterSql(filter: SnapshotFilter, firstParameter: number): { sql: string; values: (string | string[])[] } {
  const parts: string[] = [];
  const values: (string | string[])[] = [];
  for (const condition of filter) {
    const column = quoteIdent(condition.column);
    switch (condition.op) {
      case "is null":
      case "is not null":
        parts.push(`${column} ${condition.op.toUpperCase()}`);
        break;
      case "in":
        values.push((condition.value as readonly FilterValue[]).map(parameterText));
        parts.push(`${column} = ANY($${firstParameter + values.length - 1})`);
        break;
      default:
        values.push(parameterText(condition.value as FilterValue));
        parts.push(`${column} ${condition.op} $${firstParameter + values.length - 1}`);
    }
  }
  return { sql: parts.join(" AND "), values };
}

/** The filter in the friendly syntax, for logs and reports (values JSON-quoted, never raw). */
export function describeFilter(filter: SnapshotFilter): string {
  return filter
    .map((c) => {
      if (c.op === "is null" || c.op === "is not null") return `${c.column} ${c.op}`;
      if (c.op === "in") return `${c.column} in (${(c.value as readonly FilterValue[]).map((v) => JSON.stringify(v)).join(", ")})`;
      return `${c.column} ${c.op} ${JSON.stringify(c.value)}`;
    })
    .join(" and ");
}

/**
 * The friendly syntax of `tera-cdc snapshot --where`: conditions joined by `and`, each
 * `column op value`, `column in (v, ...)`, `column is [not] null`; values are numbers, 'text'
 * (a quote doubled inside), true or false; `!=` means `<>`. Columns are checked by tera-cdc.
 */
export function parseFriendlyFilter(text: string): FilterCondition[] {
  const tokens = tokenize(text);
  let at = 0;
  const peek = () => tokens[at];
  const next = (what: string) => {
    const token = tokens[at++];
    if (!token) throw new FilterError(`the where condition ends early: ${what} expected (example: id_site = 3 and device_name is not null)`);
    return token;
  };
  const word = (token: Token | undefined, w: string) => token?.kind === "word" && token.text.toLowerCase() === w;
  const value = (): FilterValue => {
    const token = next("a value");
    if (token.kind === "string") return token.text;
    if (token.kind === "number") return Number(token.text);
    if (word(token, "true")) return true;
    if (word(token, "false")) return false;
    throw new FilterError(`"${token.text}" is not a value: write a number, 'text', true or false`);
  };
  const conditions: FilterCondition[] = [];
  for (;;) {
    const name = next("a column name");
    if (name.kind !== "word" && name.kind !== "quoted") throw new FilterError(`"${name.text}" is not a column name`);
    const op = next("an operator");
    if (word(op, "is")) {
      const not = word(peek(), "not");
      if (not) at++;
      if (!word(next("null"), "null")) throw new FilterError(`"${name.text} is" must be followed by null or not null`);
      conditions.push({ column: name.text, op: not ? "is not null" : "is null" });
    } else if (word(op, "in")) {
      if (next("(").text !== "(") throw new FilterError(`"in" takes a list in parentheses: ${name.text} in (1, 2)`);
      const list: FilterValue[] = [value()];
      for (let t = next(", or )"); t.text !== ")"; t = next(", or )")) {
        if (t.text !== ",") throw new FilterError(`"${t.text}" in a list: separate values with commas and close with )`);
        list.push(value());
      }
      conditions.push({ column: name.text, op: "in", value: list });
    } else if (op.kind === "operator") {
      conditions.push({ column: name.text, op: (op.text === "!=" ? "<>" : op.text) as FilterOperator, value: value() });
    } else {
      throw new FilterError(`"${op.text}" is not an operator: use =, <>, <, <=, >, >=, in (...), is null, is not null`);
    }
    const joiner = tokens[at++];
    if (!joiner) return conditions;
    if (!word(joiner, "and")) throw new FilterError(`"${joiner.text}" after a condition: join conditions with and (or is not supported; run two snapshots)`);
  }
}

interface Token {
  readonly kind: "word" | "quoted" | "string" | "number" | "operator" | "punct";
  readonly text: string;
}

function tokenize(text: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < text.length) {
    const c = text[i]!;
    if (/\s/.test(c)) {
      i++;
      continue;
    }
    const rest = text.slice(i);
    let m: RegExpMatchArray | null;
    if ((m = /^[A-Za-z_][A-Za-z0-9_]*/.exec(rest))) tokens.push({ kind: "word", text: m[0] });
    else if ((m = /^-?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?/.exec(rest))) tokens.push({ kind: "number", text: m[0] });
    else if ((m = /^(?:<=|>=|<>|!=|=|<|>)/.exec(rest))) tokens.push({ kind: "operator", text: m[0] });
    else if (c === "(" || c === ")" || c === ",") tokens.push({ kind: "punct", text: (m = [c])[0] });
    else if (c === "'" || c === '"') {
      let out = "";
      let j = i + 1;
      for (;;) {
        const end = text.indexOf(c, j);
        if (end < 0) throw new FilterError(`unterminated ${c === "'" ? "'text'" : '"name"'} in the where condition: close it`);
        out += text.slice(j, end);
        if (text[end + 1] === c) {
          out += c;
          j = end + 2;
          continue;
        }
        j = end + 1;
        break;
      }
      tokens.push({ kind: c === "'" ? "string" : "quoted", text: out });
      i = j;
      continue;
    } else throw new FilterError(`unexpected "${c}" in the where condition: conditions look like id_site = 3 and name = 'x'`);
    i += m[0].length;
  }
  return tokens;
}
