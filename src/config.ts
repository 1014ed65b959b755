import { createPrivateKey, X509Certificate } from "node:crypto";
import { readFileSync } from "node:fs";
import YAML from "yaml";
import { ConfigError } from "./errors.js";
import { withLibpqSslModes } from "./source/database.js";
import { splitHosts } from "./source/host-list.js";
import { redactUrl } from "./ops/log.js";
import { splitUrlList } from "./redact.js";
import type { TableSettings } from "./model/plan.js";
import { readSigningKey, SigningKeyError } from "./signing-key.js";
import { parseTableRef, type TableRef } from "./source/table-ref.js";

/**
 * Settings come from flags, then environment variables, then a config file (`--config FILE`,
 * YAML or JSON), then defaults. Every value is validated at start-up; a bad one is a
 * ConfigError whose message is one line naming the setting, the value and what is allowed.
 */
export { ConfigError } from "./errors.js";

type Kind =
  | { type: "string" }
  /** `libpqSslModes`: the URL's sslmode means what it means to libpq and psql (withLibpqSslModes). */
  /** `brokerList`: a comma-separated list of URLs, the nodes of one MQTT broker cluster (src/mqtt/connect.ts). */
  | { type: "url"; schemes: readonly string[]; requireHost?: boolean; libpqSslModes?: boolean; multiHost?: boolean; brokerList?: boolean }
  | { type: "int"; min: number; max: number }
  | { type: "enum"; values: readonly string[] }
  | { type: "list" }
  /** `pem`: the file must hold a PEM certificate or private key (checked now, not at the first TLS handshake). */
  | { type: "file"; pem?: "certificate" | "private key" }
  /** The stream's signing key (src/signing-key.ts): an owner-only file of at least 32 bytes, checked now. */
  | { type: "signing-key" }
  | { type: "bool" };

export interface SettingSpec {
  /** Flag name without dashes; also the config file key. */
  readonly name: string;
  readonly env?: string;
  readonly kind: Kind;
  readonly default?: string | number | boolean | readonly string[];
  readonly help: string;
  /** Never printed back in an error (passwords). */
  readonly secret?: boolean;
}

export type SettingValues = Record<string, string | number | boolean | readonly string[] | undefined>;

/** The value a kind of setting parses to: numbers, booleans, lists, one of an enum's values, else text. */
type KindValue<K> = K extends { type: "int" }
  ? number
  : K extends { type: "bool" }
    ? boolean
    : K extends { type: "list" }
      ? string[]
      : K extends { type: "enum"; values: readonly (infer V extends string)[] }
        ? V
        : string;
/** A setting with a default always has a value; without one it may be undefined. */
type ValueOfSetting<S> = S extends { kind: infer K; default: unknown } ? KindValue<K> : S extends { kind: infer K } ? KindValue<K> | undefined : never;

/**
 * The parsed values of a settings table, typed by the table itself: declare it `as const satisfies
 * readonly SettingSpec[]` and `values["max-in-flight"]` is a number, `values["on-oversize"]` one of
 * its enum's strings, `values["tables"]` a string list or undefined, with no cast at the caller.
 */
export type TypedSettings<S extends readonly SettingSpec[]> = { readonly [P in S[number] as P["name"]]: ValueOfSetting<P> };

export interface ParsedArgs<S extends readonly SettingSpec[] = readonly SettingSpec[]> {
  readonly values: TypedSettings<S>;
  readonly positional: string[];
  /** Raw per-table settings from the config file. */
  readonly tableSettings: Record<string, TableSettings>;
  readonly help: boolean;
}

/** Reads flags (`--name value`, `--name=value`, `--flag` for booleans), env, file, defaults. */
export function parseSettings<const S extends readonly SettingSpec[]>(
  specs: S,
  argv: readonly string[],
  env: NodeJS.ProcessEnv = process.env,
  options: { allowConfigFile?: boolean } = {},
): ParsedArgs<S> {
  const byName = new Map(specs.map((s) => [s.name, s]));
  const fromFlags = new Map<string, string>();
  const positional: string[] = [];
  let configFile: string | undefined;
  let help = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === "--help" || arg === "-h") {
      help = true;
      continue;
    }
    if (!arg.startsWith("--")) {
      positional.push(arg);
      continue;
    }
    const eq = arg.indexOf("=");
    const name = arg.slice(2, eq < 0 ? undefined : eq);
    let value: string | undefined = eq < 0 ? undefined : arg.slice(eq + 1);
    if (name === "config" && options.allowConfigFile !== false) {
      configFile = value ?? argv[++i];
      if (!configFile) throw new ConfigError("setting config: --config needs a file path");
      continue;
    }
    const spec = byName.get(name);
    if (!spec) {
      throw new ConfigError(`unknown flag --${name}: see --help for the flags this command takes`);
    }
    if (value === undefined) {
      if (spec.kind.type === "bool") value = "true";
      else {
        value = argv[++i];
        if (value === undefined) throw new ConfigError(`setting ${name}: --${name} needs a value (${describe(spec.kind)})`);
      }
    }
    fromFlags.set(name, value);
  }
  const file = configFile ? readConfigFile(configFile, byName) : { values: {}, tableSettings: {} };
  const values: SettingValues = {};
  for (const spec of specs) {
    let raw: unknown;
    let source: string;
    if (fromFlags.has(spec.name)) {
      raw = fromFlags.get(spec.name);
      source = `--${spec.name}`;
    } else if (spec.env && env[spec.env] !== undefined && env[spec.env] !== "") {
      raw = env[spec.env];
      source = spec.env;
    } else if (spec.name in file.values) {
      raw = file.values[spec.name];
      source = `${spec.name} in ${configFile}`;
    } else {
      values[spec.name] = spec.default;
      continue;
    }
    values[spec.name] = validate(spec, raw, source);
  }
  // The one place values meet their types: each was just validated against this very spec (validate, defaults).
  return { values: values as TypedSettings<S>, positional, tableSettings: file.tableSettings, help };
}

function describe(kind: Kind): string {
  switch (kind.type) {
    case "string":
      return "a string";
    case "url":
      return `a URL starting with ${kind.schemes.map((s) => `${s}://`).join(", ")}${kind.brokerList ? " (or a comma-separated list of them: the brokers of one cluster)" : ""}`;
    case "int":
      return `a whole number from ${kind.min} to ${kind.max}`;
    case "enum":
      return `one of ${kind.values.join(", ")}`;
    case "list":
      return "a comma-separated list";
    case "file":
      return kind.pem ? `a readable PEM ${kind.pem} file` : "a readable file path";
    case "bool":
      return "true or false";
    case "signing-key":
      return "an owner-only (chmod 600) file holding a key of at least 32 bytes";
  }
}

function validate(spec: SettingSpec, raw: unknown, source: string): string | number | boolean | string[] {
  // A config file may give a broker list as a YAML/JSON list: the same as the comma-separated text.
  if (spec.kind.type === "url" && spec.kind.brokerList && Array.isArray(raw) && raw.length > 0 && raw.every((x) => typeof x === "string")) raw = raw.join(",");
  // URLs may carry a password: shown redacted, like in the logs.
  const shown = spec.secret ? "(hidden)" : spec.kind.type === "url" && typeof raw === "string" ? JSON.stringify(redactUrl(raw)) : JSON.stringify(raw);
  const fail = (why = ""): never => {
    throw new ConfigError(`setting ${spec.name} (from ${source}) is ${shown}${why}: expected ${describe(spec.kind)}`);
  };
  const kind = spec.kind;
  switch (kind.type) {
    case "string":
      if (typeof raw !== "string" || raw === "") return fail();
      return raw;
    case "url": {
      if (typeof raw !== "string") return fail();
      // libpq's host list (a:5432,b:5432) is checked host by host (src/source/host-list.ts).
      let each: readonly string[] = [raw];
      if (kind.multiHost) {
        try {
          each = splitHosts(raw).urls;
        } catch (error) {
          return fail(` (${(error as Error).message})`);
        }
      }
      if (kind.brokerList) each = splitUrlList(raw);
      const parsedUrls: URL[] = [];
      for (const [index, one] of each.entries()) {
        const which = each.length > 1 ? `broker ${index + 1} of ${each.length}: ` : "";
        let parsed: URL;
        try {
          parsed = new URL(one);
        } catch {
          return fail(kind.brokerList && one.includes(",") ? ` (${which}each broker of a list is a whole URL: mqtt://a:1883,mqtt://b:1883)` : ` (${which}not a URL)`);
        }
        if (!kind.schemes.includes(parsed.protocol.replace(/:$/, ""))) fail(` (${which}scheme ${parsed.protocol})`);
        if (kind.requireHost && !parsed.hostname) fail(` (${which}no host)`);
        if (each.length > 1 && !parsed.hostname) fail(` (${which}no host)`);
        parsedUrls.push(parsed);
      }
      // One client, one set of credentials and one WebSocket path for every broker of a list.
      const first = parsedUrls[0]!;
      if (parsedUrls.some((u) => u.username !== first.username || u.password !== first.password)) {
        fail(" (the brokers' URLs carry different user names or passwords: give them once, in mqtt-username and mqtt-password)");
      }
      if (parsedUrls.some((u) => u.protocol.startsWith("ws") && first.protocol.startsWith("ws") && u.pathname !== first.pathname)) {
        fail(" (the brokers' WebSocket URLs have different paths: one path for every broker of a list)");
      }
      return kind.libpqSslModes ? withLibpqSslModes(raw) : raw;
    }
    case "int": {
      const n = typeof raw === "number" ? raw : typeof raw === "string" && /^-?\d+$/.test(raw.trim()) ? Number(raw) : Number.NaN;
      if (!Number.isInteger(n) || n < kind.min || n > kind.max) fail();
      return n;
    }
    case "enum": {
      const text = typeof raw === "number" ? String(raw) : raw;
      if (typeof text !== "string" || !kind.values.includes(text)) return fail();
      return text;
    }
    case "list": {
      const items: unknown[] = Array.isArray(raw) ? raw : typeof raw === "string" ? raw.split(",") : fail();
      const list = items.map((x) => (typeof x === "string" ? x.trim() : fail()));
      if (list.some((x) => x === "")) fail(" (empty entry)");
      return list;
    }
    case "file": {
      if (typeof raw !== "string" || raw === "") return fail();
      let content: Buffer;
      try {
        content = readFileSync(raw);
      } catch (error) {
        return fail(` (${(error as NodeJS.ErrnoException).code ?? "unreadable"})`);
      }
      if (kind.pem) {
        try {
          if (kind.pem === "certificate") new X509Certificate(content);
          else createPrivateKey(content);
        } catch {
          return fail(kind.pem === "certificate" ? " (not a PEM certificate)" : " (not an unencrypted PEM private key)");
        }
      }
      return raw;
    }
    case "signing-key": {
      if (typeof raw !== "string" || raw === "") return fail();
      try {
        readSigningKey(raw);
      } catch (error) {
        // The reason names the file and the fix, never the key.
        if (error instanceof SigningKeyError) throw new ConfigError(`setting ${spec.name} (from ${source}): ${error.message}`);
        throw error;
      }
      return raw;
    }
    case "bool":
      if (raw === true || raw === "true" || raw === "1") return true;
      if (raw === false || raw === "false" || raw === "0") return false;
      return fail();
  }
}

const TABLE_SETTING_KEYS = new Set(["model", "columns", "exclude", "delete-keys", "topic"]);

function readConfigFile(path: string, specs: Map<string, SettingSpec>): { values: Record<string, unknown>; tableSettings: Record<string, TableSettings> } {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (error) {
    throw new ConfigError(`setting config: cannot read ${path} (${(error as NodeJS.ErrnoException).code}): give an existing YAML or JSON file`);
  }
  let doc: unknown;
  try {
    doc = YAML.parse(text);
  } catch (error) {
    throw new ConfigError(`setting config: ${path} is not valid YAML or JSON: ${(error as Error).message.split("\n")[0]}`);
  }
  if (doc === null || doc === undefined) return { values: {}, tableSettings: {} };
  if (!isMapping(doc)) {
    throw new ConfigError(`setting config: ${path} must hold a mapping of settings`);
  }
  const values: Record<string, unknown> = {};
  const tableSettings: Record<string, TableSettings> = {};
  for (const [key, value] of Object.entries(doc)) {
    if (key === "tables" && isMapping(value)) {
      // A mapping of table name to its settings; its keys are also the table list.
      values.tables = Object.keys(value);
      for (const [table, settings] of Object.entries(value)) {
        tableSettings[normaliseTableName(table, path)] = parseTableSettings(table, settings, path);
      }
      continue;
    }
    if (!specs.has(key)) {
      throw new ConfigError(`setting ${key} in ${path} is not a known setting: see --help for the settings this command takes`);
    }
    values[key] = value;
  }
  return { values, tableSettings };
}

/** A YAML or JSON mapping (not null, not a list). */
export function isMapping(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

function isStringList(value: unknown): value is string[] {
  return Array.isArray(value) && value.every((v) => typeof v === "string");
}

function normaliseTableName(name: string, path: string): string {
  try {
    const ref = parseTableRef(name);
    return `${ref.schema}.${ref.table}`;
  } catch (error) {
    throw new ConfigError(`setting tables in ${path}: ${(error as Error).message}`);
  }
}

function parseTableSettings(table: string, raw: unknown, path: string): TableSettings {
  if (raw === null || raw === undefined) return {};
  const where = `setting tables.${table} in ${path}`;
  if (!isMapping(raw)) throw new ConfigError(`${where} must be a mapping (model, columns, exclude, delete-keys, topic)`);
  const out: { -readonly [K in keyof TableSettings]: TableSettings[K] } = {};
  for (const [key, value] of Object.entries(raw)) {
    if (!TABLE_SETTING_KEYS.has(key)) {
      throw new ConfigError(`${where}: unknown key ${key}: allowed are ${[...TABLE_SETTING_KEYS].join(", ")}`);
    }
    if (key === "model" || key === "topic") {
      if (typeof value !== "string" || value === "") throw new ConfigError(`${where}.${key} is ${JSON.stringify(value)}: expected a non-empty string`);
      out[key] = value;
    } else {
      if (!isStringList(value)) {
        throw new ConfigError(`${where}.${key} is ${JSON.stringify(value)}: expected a list of column names`);
      }
      if (key === "delete-keys") out.deleteKeys = value;
      else if (key === "columns") out.columns = value;
      else out.exclude = value;
    }
  }
  return out;
}

export function tableSettingsFor(all: Readonly<Record<string, TableSettings>>, ref: TableRef): TableSettings {
  return all[`${ref.schema}.${ref.table}`] ?? {};
}
