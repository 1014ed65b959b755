import { type AuditConfig, runAuditSink } from "../audit/sink.js";
import { ConfigError, type SettingSpec } from "../config.js";
import { LOCAL_DATA_DIR_SETTING } from "../embedded/local.js";
import { mqttCredentials } from "../mqtt/connect.js";
import { createLogger } from "../ops/log.js";
import { signingKeyOf } from "../signing-key.js";
import { parseTableRef, type TableRef } from "../source/table-ref.js";
import { flagsOnlySettings, helpText, required } from "./help.js";
import { runSetting } from "./run-settings.js";

const USAGE = "Usage: tera-cdc audit --mqtt-url URL --database-url URL [--models m1,m2] [--table audit.events] [flags]";
const EXAMPLES = [
  "tera-cdc audit --mqtt-url mqtt://broker:1883 --database-url postgres://audit@db/audit",
  "tera-cdc audit --mqtt-url mqtt://broker:1883 --database-url postgres://audit@db/audit --models device,user --table audit.devices_and_users",
];

/** Settings of `tera-cdc audit`; the broker ones are run's. */
export const AUDIT_SETTINGS = [
  runSetting("mqtt-url"),
  { name: "database-url", env: "TERA_CDC_AUDIT_DATABASE_URL", kind: { type: "url", schemes: ["postgres", "postgresql"] }, help: "PostgreSQL database that holds the audit table" },
  { name: "models", env: "TERA_CDC_AUDIT_MODELS", kind: { type: "list" }, help: "comma list of OpenTera models to record (default: every model)" },
  { name: "table", env: "TERA_CDC_AUDIT_TABLE", kind: { type: "string" }, default: "audit.events", help: "audit table, schema.table, created if missing" },
  { name: "client-id", env: "TERA_CDC_AUDIT_CLIENT_ID", kind: { type: "string" }, help: "MQTT client id of the persistent session (default tera-cdc-audit-<schema>.<table>)" },
  { name: "group", env: "TERA_CDC_AUDIT_GROUP", kind: { type: "string" }, help: "MQTT 5 shared subscription group, for several sinks writing one table (each with its own --client-id)" },
  { name: "session-expiry", env: "TERA_CDC_AUDIT_SESSION_EXPIRY", kind: { type: "int", min: 60, max: 4294967295 }, default: 604800, help: "seconds the broker keeps queuing changes for a stopped sink" },
  { name: "batch-size", env: "TERA_CDC_AUDIT_BATCH_SIZE", kind: { type: "int", min: 1, max: 10000 }, default: 500, help: "most changes per INSERT (acknowledged to the broker after its COMMIT)" },
  { name: "dead-letter-topic", env: "TERA_CDC_AUDIT_DEAD_LETTER_TOPIC", kind: { type: "string" }, default: "tera-cdc/audit/dead-letter", help: "MQTT topic of changes the table cannot store (a value PostgreSQL refuses), as JSON with the reason; the sink goes on" },
  runSetting("signing-key-file"),
  runSetting("mqtt-username"),
  runSetting("mqtt-password"),
  runSetting("mqtt-ca"),
  runSetting("mqtt-cert"),
  LOCAL_DATA_DIR_SETTING,
  runSetting("mqtt-key"),
  runSetting("log-level"),
] as const satisfies readonly SettingSpec[];


export function auditConfig(argv: string[], env: NodeJS.ProcessEnv = process.env): AuditConfig | "help" {
  const v = flagsOnlySettings("audit", AUDIT_SETTINGS, argv, env);
  if (v === "help") return "help";
  const mqttUrl = required(AUDIT_SETTINGS, v, "mqtt-url");
  const databaseUrl = required(AUDIT_SETTINGS, v, "database-url");
  let table: TableRef;
  try {
    table = parseTableRef(v.table);
  } catch (error) {
    throw new ConfigError(`setting table: ${(error as Error).message}`);
  }
  const models = v.models;
  for (const model of models ?? []) {
    if (/[./+#]/.test(model)) throw new ConfigError(`setting models: "${model}" is not a model name (no ".", "/", "+" or "#"): give OpenTera model names like device,user`);
  }
  const group = v.group;
  if (group !== undefined && /[/+#]/.test(group)) throw new ConfigError(`setting group: "${group}" may not contain "/", "+" or "#"`);
  return {
    mqttUrl,
    databaseUrl,
    models,
    table,
    clientId: v["client-id"] ?? `tera-cdc-audit-${table.schema}.${table.table}`,
    group,
    sessionExpirySeconds: v["session-expiry"],
    batchSize: v["batch-size"],
    deadLetterTopic: v["dead-letter-topic"],
    signingKey: signingKeyOf(v),
    mqtt: mqttCredentials(v),
    logLevel: v["log-level"],
  };
}

/** `tera-cdc audit`: the audit sink (src/audit/sink.ts) until SIGINT or SIGTERM. */
export async function auditCommand(argv: string[]): Promise<number> {
  const config = auditConfig(argv);
  if (config === "help") {
    process.stdout.write(helpText(USAGE, AUDIT_SETTINGS, EXAMPLES));
    return 0;
  }
  const logger = createLogger(config.logLevel);
  await runAuditSink(config, logger, () =>
    new Promise<void>((resolve) => {
      const onSignal = (signal: string) => {
        logger.info({ signal }, "stopping");
        resolve();
      };
      process.once("SIGINT", onSignal);
      process.once("SIGTERM", onSignal);
    }),
  );
  return 0;
}
