import { createPrivateKey, X509Certificate } from "node:crypto";
import { readFileSync } from "node:fs";
import YAML from "yaml";
import { ConfigError } from "./errors.js";
import { readCredentials } from "./mqtt/connect.js";
import { splitHosts } from "./source/host-list.js";
import { redactUrl } from "./ops/log.js";
import type { TableSettings } from "./model/plan.js";
import { readSigningKey, SigningKeyError } from "./signing-key.js";
import { parseTableRef, type TableRef } from "./source/setup.js";

/**
 * Settings come from flags, then environment variables, then a config file (`--config FILE`,
 * YAML or JSON), then defaults. Every value is validated at start-up; a bad one is a
 * ConfigError whose message is one line naming the setting, the value and what is allowed.
 */
export { ConfigError } from "./errors.js";

type Kind =
  | { type: "string" }
  /** `libpqSslModes`: the URL's sslmode means what it means to libpq and psql (withLibpqSslModes). */
  | { type: "url"; schemes: readonly string[]; requireHost?: boolean; libpqSslModes?: boolean; multiHost?: boolean }
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

export type SettingValues = Record<string, string | number | boolean | string[] | undefined>;

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
      values[spec.name] = spec.default as SettingValues[string];
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
      return `a URL starting with ${kind.schemes.map((s) => `${s}://`).join(", ")}`;
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
  // URLs may carry a password: shown redacted, like in the logs.
  const shown = spec.secret ? "(hidden)" : spec.kind.type === "url" && typeof raw === "string" ? JSON.stringify(redactUrl(raw)) : JSON.stringify(raw);
  const fail = (why = ""): never => {
    throw new ConfigError(`setting ${spec.name} (from ${source}) is ${shown}${why}: expected ${describe(spec.kind)}`);
  };
  const kind = spec.kind;
  switch (kind.type) {
    case "string":
      if (typeof raw !== "string" || raw === "") fail();
      return raw as string;
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
      for (const one of each) {
        let parsed: URL;
        try {
          parsed = new URL(one);
        } catch {
          return fail(" (not a URL)");
        }
        if (!kind.schemes.includes(parsed.protocol.replace(/:$/, ""))) fail(` (scheme ${parsed.protocol})`);
        if (kind.requireHost && !parsed.hostname) fail(" (no host)");
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
      if (typeof text !== "string" || !kind.values.includes(text)) fail();
      return text as string;
    }
    case "list": {
      const items = Array.isArray(raw) ? raw : typeof raw === "string" ? raw.split(",") : fail();
      const list = (items as unknown[]).map((x) => (typeof x === "string" ? x.trim() : fail()));
      if (list.some((x) => x === "")) fail(" (empty entry)");
      return list as string[];
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
  if (typeof doc !== "object" || Array.isArray(doc)) {
    throw new ConfigError(`setting config: ${path} must hold a mapping of settings`);
  }
  const values: Record<string, unknown> = {};
  const tableSettings: Record<string, TableSettings> = {};
  for (const [key, value] of Object.entries(doc as Record<string, unknown>)) {
    if (key === "tables" && value !== null && typeof value === "object" && !Array.isArray(value)) {
      // A mapping of table name to its settings; its keys are also the table list.
      values.tables = Object.keys(value as object);
      for (const [table, settings] of Object.entries(value as Record<string, unknown>)) {
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
  if (typeof raw !== "object" || Array.isArray(raw)) throw new ConfigError(`${where} must be a mapping (model, columns, exclude, delete-keys, topic)`);
  const out: { -readonly [K in keyof TableSettings]: TableSettings[K] } = {};
  for (const [key, value] of Object.entries(raw as Record<string, unknown>)) {
    if (!TABLE_SETTING_KEYS.has(key)) {
      throw new ConfigError(`${where}: unknown key ${key}: allowed are ${[...TABLE_SETTING_KEYS].join(", ")}`);
    }
    if (key === "model" || key === "topic") {
      if (typeof value !== "string" || value === "") throw new ConfigError(`${where}.${key} is ${JSON.stringify(value)}: expected a non-empty string`);
      out[key] = value;
    } else {
      if (!Array.isArray(value) || value.some((v) => typeof v !== "string")) {
        throw new ConfigError(`${where}.${key} is ${JSON.stringify(value)}: expected a list of column names`);
      }
      if (key === "delete-keys") out.deleteKeys = value as string[];
      else out[key as "columns" | "exclude"] = value as string[];
    }
  }
  return out;
}

/** Settings of `tera-cdc run`. */
export const RUN_SETTING_SPECS = [
  { name: "database-url", env: "TERA_CDC_DATABASE_URL", kind: { type: "url", schemes: ["postgres", "postgresql"], libpqSslModes: true, multiHost: true }, help: "PostgreSQL connection URL; several hosts (postgres://u@a:5432,b:5432/db) follow the read-write one (target_session_attrs)", secret: false },
  { name: "mqtt-url", env: "TERA_CDC_MQTT_URL", kind: { type: "url", schemes: ["mqtt", "mqtts", "ws", "wss", "tcp", "ssl"], requireHost: true }, help: "MQTT broker URL" },
  { name: "redis-url", env: "TERA_CDC_REDIS_URL", kind: { type: "url", schemes: ["redis", "rediss"], requireHost: true }, help: "Redis URL redis://[user:password@]host:port[/db] (rediss:// for TLS): PUBLISH on OpenTera's dotted channels instead of MQTT" },
  { name: "tables", env: "TERA_CDC_TABLES", kind: { type: "list" }, help: "comma list of table or schema.table (default: the publication's tables)" },
  { name: "publication", env: "TERA_CDC_PUBLICATION", kind: { type: "string" }, default: "tera_cdc", help: "publication, created for --tables if missing" },
  { name: "slot", env: "TERA_CDC_SLOT", kind: { type: "string" }, default: "tera_cdc", help: "permanent logical replication slot, created if missing" },
  { name: "qos", env: "TERA_CDC_QOS", kind: { type: "enum", values: ["0", "1", "2"] }, default: "1", help: "MQTT QoS" },
  { name: "health-port", env: "TERA_CDC_HEALTH_PORT", kind: { type: "int", min: 1, max: 65535 }, help: "port of GET /healthz and /metrics (default off)" },
  { name: "health-host", env: "TERA_CDC_HEALTH_HOST", kind: { type: "string" }, default: "127.0.0.1", help: "address /healthz and /metrics listen on (0.0.0.0: every interface, e.g. for a container's probes)" },
  { name: "mqtt-username", env: "TERA_CDC_MQTT_USERNAME", kind: { type: "string" }, help: "broker user name" },
  { name: "mqtt-password", env: "TERA_CDC_MQTT_PASSWORD", kind: { type: "string" }, help: "broker password", secret: true },
  { name: "mqtt-ca", env: "TERA_CDC_MQTT_CA", kind: { type: "file", pem: "certificate" }, help: "CA certificate file for mqtts:// and wss://" },
  { name: "mqtt-cert", env: "TERA_CDC_MQTT_CERT", kind: { type: "file", pem: "certificate" }, help: "client certificate file (with --mqtt-key)" },
  { name: "mqtt-key", env: "TERA_CDC_MQTT_KEY", kind: { type: "file", pem: "private key" }, help: "client private key file, unencrypted (with --mqtt-cert)" },
  { name: "mqtt-client-id", env: "TERA_CDC_MQTT_CLIENT_ID", kind: { type: "string" }, help: "MQTT client id (default tera-cdc-<slot>-<random>)" },
  { name: "max-in-flight", env: "TERA_CDC_MAX_IN_FLIGHT", kind: { type: "int", min: 1, max: 60000 }, default: 1000, help: "QoS 1/2 messages awaiting the broker's acknowledgement at most" },
  { name: "max-message-bytes", env: "TERA_CDC_MAX_MESSAGE_BYTES", kind: { type: "int", min: 1024, max: 268435455 }, default: 268435455, help: "largest MQTT packet to send; larger events follow --on-oversize" },
  { name: "on-oversize", env: "TERA_CDC_ON_OVERSIZE", kind: { type: "enum", values: ["keys-only", "dead-letter", "skip"] }, default: "keys-only", help: "what to do with an event too large for the broker or refused by it" },
  { name: "dead-letter-topic", env: "TERA_CDC_DEAD_LETTER_TOPIC", kind: { type: "string" }, default: "tera-cdc/dead-letter", help: "MQTT topic of refused events under --on-oversize dead-letter" },
  { name: "batch-events", env: "TERA_CDC_BATCH_EVENTS", kind: { type: "int", min: 1, max: 10000 }, default: 1, help: "DatabaseEvents of one model and transaction per TeraEvent (1: OpenTera's one per message)" },
  { name: "batch-bytes", env: "TERA_CDC_BATCH_BYTES", kind: { type: "int", min: 1024, max: 268435455 }, default: 65536, help: "largest batched TeraEvent payload" },
  { name: "signing-key-file", env: "TERA_CDC_SIGNING_KEY_FILE", kind: { type: "signing-key" }, help: "file (mode 0600) of the key that signs every message (HMAC-SHA256, property sig; docs/security.md); needs an MQTT 5 broker" },
  { name: "log-level", env: "TERA_CDC_LOG_LEVEL", kind: { type: "enum", values: ["trace", "debug", "info", "warn", "error", "fatal", "silent"] }, default: "info", help: "log level" },
  { name: "log-to-mqtt", env: "TERA_CDC_LOG_TO_MQTT", kind: { type: "bool" }, default: false, help: "also publish tera-cdc's own log lines as OpenTera LogEvents on log/<level>" },
  { name: "standby-poll-ms", env: "TERA_CDC_STANDBY_POLL_MS", kind: { type: "int", min: 100, max: 600000 }, default: 2000, help: "how often a standby checks whether the slot is free" },
  { name: "status-interval-ms", env: "TERA_CDC_STATUS_INTERVAL_MS", kind: { type: "int", min: 100, max: 600000 }, default: 10000, help: "most time between status updates to PostgreSQL" },
  // Snapshots and RPC (docs/snapshots.md).
  { name: "module-name", env: "TERA_CDC_MODULE_NAME", kind: { type: "string" }, default: "tera-cdc", help: "OpenTera module name: RPC requests arrive on module/<name>/rpc" },
  { name: "rpc", env: "TERA_CDC_RPC", kind: { type: "bool" }, help: "listen for RPC requests (status, snapshot, snapshot_status, snapshot_cancel); default: on with the embedded broker (it authenticates, and only local commands may publish RPC), off otherwise: turn it on where the broker authenticates and its ACL lets only operators publish on module/<name>/rpc (docs/security.md)" },
  { name: "rpc-reply-prefixes", env: "TERA_CDC_RPC_REPLY_PREFIXES", kind: { type: "list" }, default: ["tera-cdc/cli/"], help: "MQTT topic prefixes RPC replies may go to; a request with any other reply_to is not answered" },
  { name: "rpc-operator-prefixes", env: "TERA_CDC_RPC_OPERATOR_PREFIXES", kind: { type: "list" }, default: [], help: "reply topic prefixes of operators, who see and cancel every snapshot (others only their own)" },
  { name: "rpc-max-request-bytes", env: "TERA_CDC_RPC_MAX_REQUEST_BYTES", kind: { type: "int", min: 256, max: 1048576 }, default: 16384, help: "largest RPC request read; larger ones are dropped" },
  { name: "snapshot", env: "TERA_CDC_SNAPSHOT", kind: { type: "enum", values: ["never", "initial"] }, default: "never", help: "initial: snapshot every published model once when the slot is created" },
  { name: "snapshot-chunk-size", env: "TERA_CDC_SNAPSHOT_CHUNK_SIZE", kind: { type: "int", min: 1, max: 50000 }, default: 2048, help: "rows a snapshot reads per chunk (between two watermarks)" },
  { name: "snapshot-models", env: "TERA_CDC_SNAPSHOT_MODELS", kind: { type: "list" }, help: "models an RPC caller may snapshot (default: every published model)" },
  { name: "snapshot-max-running", env: "TERA_CDC_SNAPSHOT_MAX_RUNNING", kind: { type: "int", min: 1, max: 16 }, default: 2, help: "snapshots running at once at most; a request beyond is refused" },
  { name: "snapshot-statement-timeout", env: "TERA_CDC_SNAPSHOT_STATEMENT_TIMEOUT", kind: { type: "int", min: 1, max: 3600 }, default: 60, help: "seconds a snapshot statement (a chunk's SELECT) may run before the snapshot fails" },
  { name: "preset", env: "TERA_CDC_PRESET", kind: { type: "enum", values: ["opentera"] }, help: "tables, model names and published columns of a known schema (opentera: OpenTera's own events, its secrets withheld); your table settings override it" },
  { name: "data-dir", env: "TERA_CDC_DATA_DIR", kind: { type: "string" }, default: ".tera-cdc", help: "folder of the stream record (slot-<slot>.json: where the slot's stream came from; keep it across restarts) and of the embedded PostgreSQL and broker" },
  { name: "embedded-gateway", env: "TERA_CDC_EMBEDDED_GATEWAY", kind: { type: "bool" }, default: true, help: "with the embedded database and broker: also start the development gateway on 127.0.0.1 (the live page of the sample database; MQTT 5 broker only)" },
  { name: "embedded-broker", env: "TERA_CDC_EMBEDDED_BROKER", kind: { type: "enum", values: ["auto", "mosquitto", "aedes"] }, default: "auto", help: "broker started when no --mqtt-url is given: auto (Mosquitto, MQTT 5, when installed, else aedes), mosquitto, or aedes (MQTT 3.1.1: no lsn/seq)" },
  { name: "start-afresh", env: "TERA_CDC_START_AFRESH", kind: { type: "bool" }, default: false, help: "create a new slot although the recorded one is gone or belongs to another server (what was committed meanwhile is not published; logged); use once" },
] as const satisfies readonly SettingSpec[];

/** The same table, seen as plain specs (help text, commands that share some of run's settings). */
export const RUN_SETTINGS: readonly SettingSpec[] = RUN_SETTING_SPECS;

/**
 * node-postgres reads `sslmode=require` (and prefer, verify-ca) as verify-full and prints a
 * multi-line warning, so a URL that works with psql against a self-signed server fails here.
 * Asking for libpq's meaning keeps one URL valid for both; verify-full still verifies.
 */
export function withLibpqSslModes(url: string): string {
  if (!/[?&]sslmode=/.test(url) || /[?&]uselibpqcompat=/.test(url)) return url;
  return `${url}${url.includes("?") ? "&" : "?"}uselibpqcompat=true`;
}

export function tableSettingsFor(all: Readonly<Record<string, TableSettings>>, ref: TableRef): TableSettings {
  return all[`${ref.schema}.${ref.table}`] ?? {};
}

/** The `signing-key-file` setting's key (the file was checked when the settings were read); undefined when not set. */
export function signingKeyOf(values: SettingValues): Buffer | undefined {
  const path = values["signing-key-file"] as string | undefined;
  if (path === undefined) return undefined;
  try {
    return readSigningKey(path);
  } catch (error) {
    // Changed since it was checked a moment ago.
    if (error instanceof SigningKeyError) throw new ConfigError(`setting signing-key-file: ${error.message}`);
    throw error;
  }
}

/** Broker credentials and TLS material, as every command that connects to the broker needs them. */
export interface MqttCredentials {
  readonly username?: string;
  readonly password?: string;
  readonly ca?: Buffer;
  readonly cert?: Buffer;
  readonly key?: Buffer;
}

/** Reads the `mqtt-username`, `mqtt-password`, `mqtt-ca`, `mqtt-cert` and `mqtt-key` settings (files already validated). */
export function mqttCredentials(values: SettingValues): MqttCredentials {
  return readCredentials({
    username: values["mqtt-username"] as string | undefined,
    password: values["mqtt-password"] as string | undefined,
    caFile: values["mqtt-ca"] as string | undefined,
    certFile: values["mqtt-cert"] as string | undefined,
    keyFile: values["mqtt-key"] as string | undefined,
  });
}
