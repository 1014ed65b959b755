import type { ValueRule } from "./types.js";

/**
 * Turns one column's PostgreSQL text form into a JSON fragment, by the published value rules:
 * exact integers, numeric as a string of its digits, timestamps as Python's isoformat() writes
 * them, json embedded, bytea base64, arrays as JSON arrays, anything else as its text.
 * The replication session runs with DateStyle=ISO and TimeZone=UTC (source/replication.ts),
 * which is what these parsers expect.
 */
export type ValueFormatter = (text: string) => string;

const quote = JSON.stringify as (text: string) => string;

const formatBool: ValueFormatter = (text) => (text === "t" ? "true" : "false");
const formatInteger: ValueFormatter = (text) => text;
const formatFloat: ValueFormatter = (text) =>
  text === "NaN" || text === "Infinity" || text === "-Infinity" ? quote(text) : text;
const formatJson: ValueFormatter = (text) => text;

/**
 * PostgreSQL trims trailing zeros of the fraction (`.12`, `.00001`); isoformat() writes all six
 * digits whenever the fraction is not zero (`.120000`, `.000010`), and PostgreSQL writes none
 * when it is zero, as isoformat() does.
 */
function sixDigits(fraction: string | undefined): string {
  return fraction === undefined ? "" : `.${fraction.padEnd(6, "0")}`;
}

/** `2026-11-26 03:39:00.76+00` → `2026-11-26T03:39:00.760000+00:00`. */
const TIMESTAMPTZ = /^(\d{4}-\d\d-\d\d) (\d\d:\d\d:\d\d)(?:\.(\d{1,6}))?([+-]\d\d)(?::?(\d\d))?(?::?(\d\d))?$/;
/**
 * The form the replication session (TimeZone=UTC) sends for every year 1-9999: checked without
 * capturing, then cut by position. The general pattern's match array and its five substrings were
 * the largest allocation of a change with a timestamptz column (issue 18 allocation profile).
 */
const TIMESTAMPTZ_UTC = /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d{1,6})?\+00$/;
/** Zeros that pad a fraction of 1 to 6 digits to six, by its digit count. */
const FRACTION_PADDING = ["", "00000", "0000", "000", "00", "0", ""];
const formatTimestamptz: ValueFormatter = (text) => {
  if (TIMESTAMPTZ_UTC.test(text)) {
    // `YYYY-MM-DD HH:MM:SS` is 19 characters, `+00` 3: what lies between is `.` and the fraction, if any.
    const fractionDigits = Math.max(0, text.length - 23);
    return `"${text.slice(0, 10)}T${text.slice(11, text.length - 3)}${FRACTION_PADDING[fractionDigits]}+00:00"`;
  }
  const m = TIMESTAMPTZ.exec(text);
  // infinity, BC dates and years past 9999 have no isoformat() form: keep PostgreSQL's text.
  if (!m) return quote(text);
  const seconds = m[6] ? `:${m[6]}` : "";
  return `"${m[1]}T${m[2]}${sixDigits(m[3])}${m[4]}:${m[5] ?? "00"}${seconds}"`;
};

const TIMESTAMP = /^(\d{4}-\d\d-\d\d) (\d\d:\d\d:\d\d)(?:\.(\d{1,6}))?$/;
const formatTimestamp: ValueFormatter = (text) => {
  const m = TIMESTAMP.exec(text);
  return m ? `"${m[1]}T${m[2]}${sixDigits(m[3])}"` : quote(text);
};

const formatBytea: ValueFormatter = (text) => {
  if (text.startsWith("\\x")) return `"${Buffer.from(text.slice(2), "hex").toString("base64")}"`;
  return quote(Buffer.from(unescapeByteaEscapeFormat(text), "latin1").toString("base64"));
};

function unescapeByteaEscapeFormat(text: string): string {
  // bytea_output=escape: backslash-octal escapes and doubled backslashes.
  return text.replace(/\\(\\|[0-7]{3})/g, (_, code: string) =>
    code === "\\" ? "\\" : String.fromCharCode(Number.parseInt(code, 8)),
  );
}

const NOT_PRINTABLE_ASCII = /[^\x20-\x7e]/;
const NOT_PRINTABLE_ASCII_ALL = /[^\x20-\x7e]/g;

/**
 * A JSON fragment as Python's `json.dumps` writes it (`ensure_ascii=True`): every character
 * outside printable ASCII as `\uXXXX` in lower-case hex, one escape per UTF-16 unit (a surrogate
 * pair outside the BMP). JSON.stringify already escapes the control characters the same way.
 */
export function asciiOnlyJson(fragment: string): string {
  if (!NOT_PRINTABLE_ASCII.test(fragment)) return fragment;
  return fragment.replace(NOT_PRINTABLE_ASCII_ALL, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
}

export function formatterFor(rule: ValueRule): ValueFormatter {
  switch (rule.rule) {
    case "bool":
      return formatBool;
    case "integer":
      return formatInteger;
    case "float":
      return formatFloat;
    case "numeric":
    case "text":
    case "date":
      return quote;
    case "timestamptz":
      return formatTimestamptz;
    case "timestamp":
      return formatTimestamp;
    case "json":
      return formatJson;
    case "bytea":
      return formatBytea;
    case "array": {
      const element = formatterFor(rule.element);
      const delimiter = rule.delimiter;
      return (text) => formatArray(text, element, delimiter);
    }
  }
}

/**
 * PostgreSQL array literal → JSON array: `{1,NULL,3}`, `{{1,2},{3,4}}`, `{"a b","c\"d"}`,
 * with optional `[lower:upper]=` dimension decoration (dropped: JSON arrays start at 0).
 */
export function formatArray(text: string, element: ValueFormatter, delimiter = ","): string {
  let i = 0;
  if (text.charCodeAt(0) === 0x5b /* [ */) {
    const eq = text.indexOf("=");
    if (eq < 0) return quote(text);
    i = eq + 1;
  }
  const out: string[] = [];
  const length = text.length;
  let depth = 0;
  // Whether the next element in the current level needs a comma before it.
  let needComma = false;
  while (i < length) {
    const c = text[i]!;
    if (c === "{") {
      if (needComma) out.push(",");
      out.push("[");
      depth++;
      needComma = false;
      i++;
    } else if (c === "}") {
      out.push("]");
      depth--;
      needComma = true;
      i++;
    } else if (c === delimiter) {
      i++;
    } else if (c === " " || c === "\t" || c === "\n") {
      i++;
    } else {
      if (needComma) out.push(",");
      needComma = true;
      if (c === '"') {
        let value = "";
        i++;
        let start = i;
        while (i < length && text[i] !== '"') {
          if (text[i] === "\\") {
            value += text.slice(start, i) + text[i + 1];
            i += 2;
            start = i;
          } else i++;
        }
        value += text.slice(start, i);
        i++; // closing quote
        out.push(element(value));
      } else {
        const start = i;
        while (i < length && text[i] !== delimiter && text[i] !== "}") i++;
        // Only the whitespace PostgreSQL's array syntax skips (scanner_isspace: ASCII). String.trim()
        // would also strip U+2028, U+2029, U+FEFF and other Unicode spaces, which array_out leaves
        // unquoted because they are data.
        const raw = trimAsciiSpace(text.slice(start, i));
        out.push(raw === "NULL" ? "null" : element(raw));
      }
    }
  }
  if (depth !== 0) return quote(text);
  return out.join("");
}

const ASCII_SPACE_EDGES = /^[ \t\n\r\v\f]+|[ \t\n\r\v\f]+$/g;

function trimAsciiSpace(text: string): string {
  return text.replace(ASCII_SPACE_EDGES, "");
}
