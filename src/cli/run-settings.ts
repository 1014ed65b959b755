import type { SettingSpec } from "../config.js";

/** Settings of `tera-cdc run`. */
export const RUN_SETTINGS = [
  { name: "database-url", env: "TERA_CDC_DATABASE_URL", kind: { type: "url", schemes: ["postgres", "postgresql"], libpqSslModes: true, multiHost: true }, help: "PostgreSQL connection URL; several hosts (postgres://u@a:5432,b:5432/db) follow the read-write one (target_session_attrs)", secret: false },
  { name: "mqtt-url", env: "TERA_CDC_MQTT_URL", kind: { type: "url", schemes: ["mqtt", "mqtts", "ws", "wss", "tcp", "ssl"], requireHost: true, brokerList: true }, help: "MQTT broker URL, or a comma-separated list of a cluster's brokers (mqtt://a:1883,mqtt://b:1883): the first that answers, then the next when one is lost (docs/scaling.md)" },
  { name: "redis-url", env: "TERA_CDC_REDIS_URL", kind: { type: "url", schemes: ["redis", "rediss"], requireHost: true }, help: "Redis URL redis://[user:password@]host:port[/db] (rediss:// for TLS): PUBLISH on OpenTera's dotted channels instead of MQTT" },
  { name: "redis-ca", env: "TERA_CDC_REDIS_CA", kind: { type: "file", pem: "certificate" }, help: "CA certificate file that signed the Redis server's certificate (rediss:// with a private CA)" },
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

/** The name of one of run's settings. */
export type RunSettingName = (typeof RUN_SETTINGS)[number]["name"];
/** Run's setting of that name, with its literal kind and default (so a command sharing it reads it typed). */
export type RunSetting<N extends RunSettingName> = Extract<(typeof RUN_SETTINGS)[number], { readonly name: N }>;

/** Run's setting of that name, for a command that takes the same flag (one definition of each flag). */
export function runSetting<const N extends RunSettingName>(name: N): RunSetting<N> {
  const spec = RUN_SETTINGS.find((s): s is RunSetting<N> => s.name === name);
  if (!spec) throw new Error(`no setting named ${name}`);
  return spec;
}

/** Run's settings of these names, in this order. */
export function settingsNamed<const N extends readonly RunSettingName[]>(...names: N): RunSetting<N[number]>[] {
  return names.map((name) => runSetting<N[number]>(name));
}
