import { readFileSync } from "node:fs";
import { ConfigError, type SettingSpec } from "../config.js";
import { LOCAL_DATA_DIR_SETTING } from "../embedded/local.js";
import { createVerifier } from "../gateway/auth.js";
import { GATEWAY_DEFAULTS } from "../gateway/defaults.js";
import { type AccessRules, readRulesFile, RulesError } from "../gateway/rules.js";
import { Gateway, type GatewayOptions } from "../gateway/server.js";
import { buildWebAssets } from "../gateway/web.js";
import { createLogger, type LogLevel, redactUrl } from "../ops/log.js";
import { signingKeyOf } from "../signing-key.js";
import { flagsOnlySettings, helpText, required } from "./help.js";
import { runSetting } from "./run-settings.js";

const USAGE = "Usage: tera-cdc gateway --mqtt-url URL --rules FILE (--auth-secret S | --auth-public-key FILE) [flags]";
const EXAMPLES = [
  "TERA_CDC_GATEWAY_AUTH_SECRET=$(openssl rand -hex 32) tera-cdc gateway --mqtt-url mqtt://broker:1883 --rules gateway-rules.yaml --port 8080",
  "tera-cdc gateway --mqtt-url mqtt://broker:1883 --rules rules.yaml --auth-public-key issuer.pem --auth-issuer https://opentera.example --models device,site",
];

/** Settings of `tera-cdc gateway`. */
export const GATEWAY_SETTINGS = [
  { name: "mqtt-url", env: "TERA_CDC_MQTT_URL", kind: { type: "url", schemes: ["mqtt", "mqtts", "ws", "wss", "tcp", "ssl"], brokerList: true }, help: "MQTT broker URL, or a comma-separated list of a cluster's brokers (MQTT 5: the events' lsn/seq are user properties)" },
  { name: "mqtt-username", env: "TERA_CDC_MQTT_USERNAME", kind: { type: "string" }, help: "broker user name" },
  { name: "mqtt-password", env: "TERA_CDC_MQTT_PASSWORD", kind: { type: "string" }, help: "broker password", secret: true },
  { name: "mqtt-ca", env: "TERA_CDC_MQTT_CA", kind: { type: "file" }, help: "CA certificate file for mqtts:// and wss://" },
  { name: "host", env: "TERA_CDC_GATEWAY_HOST", kind: { type: "string" }, default: "127.0.0.1", help: "address to listen on (127.0.0.1: this host only; to serve others put a TLS proxy in front, docs/gateway.md)" },
  { name: "port", env: "TERA_CDC_GATEWAY_PORT", kind: { type: "int", min: 0, max: 65535 }, default: 8080, help: "HTTP port: the live page at /, the WebSocket at /ws, /healthz" },
  { name: "auth-secret", env: "TERA_CDC_GATEWAY_AUTH_SECRET", kind: { type: "string" }, help: "HS256 secret of the clients' JWTs (at least 32 bytes)", secret: true },
  { name: "auth-public-key", env: "TERA_CDC_GATEWAY_AUTH_PUBLIC_KEY", kind: { type: "file" }, help: "PEM public key of the clients' JWTs: RSA (RS256) or EC P-256 (ES256)" },
  { name: "auth-issuer", env: "TERA_CDC_GATEWAY_AUTH_ISSUER", kind: { type: "string" }, help: "required iss claim" },
  { name: "auth-audience", env: "TERA_CDC_GATEWAY_AUTH_AUDIENCE", kind: { type: "string" }, help: "required aud claim" },
  { name: "allow-tokens-without-exp", env: "TERA_CDC_GATEWAY_ALLOW_TOKENS_WITHOUT_EXP", kind: { type: "bool" }, default: false, help: "accept JWTs without an exp claim (they never expire); refused by default" },
  runSetting("signing-key-file"),
  { name: "rules", env: "TERA_CDC_GATEWAY_RULES", kind: { type: "file" }, help: "YAML or JSON file of per-model access rules (docs/gateway.md)" },
  { name: "models", env: "TERA_CDC_GATEWAY_MODELS", kind: { type: "list" }, help: "models to serve (default: every model in the rules file)" },
  { name: "ring-events", env: "TERA_CDC_GATEWAY_RING_EVENTS", kind: { type: "int", min: 1, max: 10_000_000 }, default: GATEWAY_DEFAULTS.ringEvents, help: "recent events kept for resuming clients, at most" },
  { name: "ring-bytes", env: "TERA_CDC_GATEWAY_RING_BYTES", kind: { type: "int", min: 1024, max: 8_589_934_592 }, default: GATEWAY_DEFAULTS.ringBytes, help: "memory the recent events kept for resuming clients may take, at most" },
  { name: "max-client-buffer", env: "TERA_CDC_GATEWAY_MAX_CLIENT_BUFFER", kind: { type: "int", min: 1024, max: 1_073_741_824 }, default: GATEWAY_DEFAULTS.maxClientBufferBytes, help: "bytes waiting to be sent to one client: over it without draining for 2 s, or over 16 times it, the client is disconnected as too slow" },
  { name: "max-held-frames", env: "TERA_CDC_GATEWAY_MAX_HELD_FRAMES", kind: { type: "int", min: 1000, max: 100_000_000 }, default: GATEWAY_DEFAULTS.maxHeldFrames, help: "frames waiting for slow clients over all clients, at most (a reference each, about 16 bytes of heap); past it the clients holding the most are disconnected as too slow" },
  { name: "ping-interval-ms", env: "TERA_CDC_GATEWAY_PING_INTERVAL_MS", kind: { type: "int", min: 100, max: 600_000 }, default: GATEWAY_DEFAULTS.pingIntervalMs, help: "ping period; a client that misses one answer is dropped" },
  { name: "max-keys-per-client", env: "TERA_CDC_GATEWAY_MAX_KEYS_PER_CLIENT", kind: { type: "int", min: 1, max: 100_000_000 }, default: GATEWAY_DEFAULTS.maxKeysPerClient, help: "object keys remembered per client to route deletes; beyond it the client resyncs" },
  { name: "session-ttl-ms", env: "TERA_CDC_GATEWAY_SESSION_TTL_MS", kind: { type: "int", min: 0, max: 86_400_000 }, default: GATEWAY_DEFAULTS.sessionTtlMs, help: "how long a disconnected client can resume" },
  { name: "max-sessions", env: "TERA_CDC_GATEWAY_MAX_SESSIONS", kind: { type: "int", min: 1, max: 10_000_000 }, default: GATEWAY_DEFAULTS.maxSessions, help: "client sessions kept for resume, at most" },
  { name: "log-level", env: "TERA_CDC_LOG_LEVEL", kind: { type: "enum", values: ["trace", "debug", "info", "warn", "error", "fatal", "silent"] }, default: "info", help: "log level" },
  { name: "max-rows", env: "TERA_CDC_GATEWAY_MAX_ROWS", kind: { type: "int", min: 0, max: 100_000_000 }, default: GATEWAY_DEFAULTS.maxRows, help: "current rows kept over all models, sent to pages on load (past it a model's pages get only changes)" },
  { name: "max-row-bytes", env: "TERA_CDC_GATEWAY_MAX_ROW_BYTES", kind: { type: "int", min: 0, max: 8_589_934_592 }, default: GATEWAY_DEFAULTS.maxRowBytes, help: "memory the current rows may take over all models, at most (past it a model's pages get only changes)" },
  { name: "snapshot-on-start", env: "TERA_CDC_GATEWAY_SNAPSHOT_ON_START", kind: { type: "bool" }, default: false, help: "ask tera-cdc (RPC) for a snapshot of each model at start, so pages get every current row, not only those changed since" },
  { name: "module-name", env: "TERA_CDC_MODULE_NAME", kind: { type: "string" }, default: "tera-cdc", help: "module name of the tera-cdc asked for snapshots (its RPC topic is module/<name>/rpc)" },
  LOCAL_DATA_DIR_SETTING,
] as const satisfies readonly SettingSpec[];

function loadRules(path: string): AccessRules {
  try {
    return readRulesFile(path);
  } catch (error) {
    if (error instanceof RulesError) throw new ConfigError(`setting rules: ${error.message}`);
    throw error;
  }
}

/** Validated settings -> the gateway's options (ConfigError, exit code 2, on a bad one). */
export function gatewayConfig(argv: string[], env: NodeJS.ProcessEnv = process.env): { options: Omit<GatewayOptions, "logger" | "web">; logLevel: LogLevel } | "help" {
  const v = flagsOnlySettings("gateway", GATEWAY_SETTINGS, argv, env);
  if (v === "help") return "help";
  const mqttUrl = required(GATEWAY_SETTINGS, v, "mqtt-url");
  const rulesFile = required(GATEWAY_SETTINGS, v, "rules");
  const secret = v["auth-secret"];
  const publicKeyFile = v["auth-public-key"];
  if ((secret === undefined) === (publicKeyFile === undefined)) {
    throw new ConfigError("setting auth: give exactly one of --auth-secret (HS256) or --auth-public-key FILE (RS256/ES256)");
  }
  let verifier;
  try {
    verifier = createVerifier({
      ...(secret !== undefined ? { secret } : { publicKeyPem: readFileSync(publicKeyFile!, "utf8") }),
      ...(v["auth-issuer"] ? { issuer: v["auth-issuer"] } : {}),
      ...(v["auth-audience"] ? { audience: v["auth-audience"] } : {}),
      allowNoExp: v["allow-tokens-without-exp"],
    });
  } catch (error) {
    throw new ConfigError(`setting auth: ${(error as Error).message}`);
  }
  const rules = loadRules(rulesFile);
  const models = v.models ?? [...rules.models.keys()];
  const withoutRules = models.filter((m) => !rules.models.has(m));
  if (withoutRules.length > 0) throw new ConfigError(`setting models: ${withoutRules.join(", ")} has no rules in ${rulesFile}: add it under models: or leave it out`);
  return {
    options: {
      mqttUrl,
      ...(v["mqtt-username"] ? { mqttUsername: v["mqtt-username"] } : {}),
      ...(v["mqtt-password"] ? { mqttPassword: v["mqtt-password"] } : {}),
      ...(v["mqtt-ca"] ? { mqttCa: readFileSync(v["mqtt-ca"]) } : {}),
      host: v.host,
      port: v.port,
      verifier,
      rules,
      models,
      ringEvents: v["ring-events"],
      ringBytes: v["ring-bytes"],
      maxClientBufferBytes: v["max-client-buffer"],
      maxHeldFrames: v["max-held-frames"],
      pingIntervalMs: v["ping-interval-ms"],
      maxKeysPerClient: v["max-keys-per-client"],
      sessionTtlMs: v["session-ttl-ms"],
      maxSessions: v["max-sessions"],
      signingKey: signingKeyOf(v),
      maxRows: v["max-rows"],
      maxRowBytes: v["max-row-bytes"],
      ...(v["snapshot-on-start"] ? { snapshotOnStart: { moduleName: v["module-name"] } } : {}),
    },
    logLevel: v["log-level"],
  };
}

export async function gatewayCommand(argv: string[]): Promise<number> {
  const settings = gatewayConfig(argv);
  if (settings === "help") {
    process.stdout.write(helpText(USAGE, GATEWAY_SETTINGS, EXAMPLES));
    return 0;
  }
  const logger = createLogger(settings.logLevel);
  // Bundled while the broker connection is made, not before it (see GatewayOptions.web).
  const gateway = new Gateway({ ...settings.options, web: buildWebAssets(), logger });
  logger.info({ mqttUrl: redactUrl(settings.options.mqttUrl) }, "connecting to the broker");
  try {
    await gateway.start();
  } catch (error) {
    logger.fatal((error as Error).message.split("\n")[0]);
    await gateway.stop().catch(() => undefined);
    if (error instanceof ConfigError) throw error;
    return 1;
  }
  await new Promise<void>((resolve) => {
    const onSignal = (signal: string) => {
      logger.info({ signal }, "stopping");
      resolve();
    };
    process.once("SIGINT", onSignal);
    process.once("SIGTERM", onSignal);
  });
  await gateway.stop();
  return 0;
}
