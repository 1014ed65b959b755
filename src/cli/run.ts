import { ConfigError, parseSettings, RUN_SETTINGS } from "../config.js";
import type { OversizeRule } from "../pipeline.js";
import { createLogger, type LogLevel } from "../ops/log.js";
import { CdcService, type ServiceConfig } from "../service.js";
import { parseTableRef } from "../source/setup.js";
import { helpText } from "./help.js";

const USAGE = "Usage: tera-cdc run --database-url URL --mqtt-url URL [--tables t1,t2] [flags]";
const EXAMPLES = [
  "tera-cdc run --database-url postgres://cdc@db/opentera --mqtt-url mqtt://broker:1883 --tables t_devices,t_users",
  "TERA_CDC_DATABASE_URL=postgres://cdc@db/app TERA_CDC_MQTT_URL=mqtts://broker:8883 tera-cdc run --mqtt-ca ca.pem",
  "tera-cdc run --config tera-cdc.yaml --health-port 8080",
];

/** Turns validated settings into the service's configuration (exit code 2 on a bad value). */
export function runConfig(argv: string[], env: NodeJS.ProcessEnv = process.env): { config: ServiceConfig; logLevel: LogLevel } | "help" {
  const parsed = parseSettings(RUN_SETTINGS, argv, env);
  if (parsed.help) return "help";
  if (parsed.positional.length > 0) throw new ConfigError(`unexpected argument "${parsed.positional[0]}": run takes only flags`);
  const v = parsed.values;
  for (const required of ["database-url", "mqtt-url"]) {
    if (v[required] === undefined) {
      const spec = RUN_SETTINGS.find((s) => s.name === required)!;
      throw new ConfigError(`setting ${required} is missing: give --${required} or ${spec.env}`);
    }
  }
  // A client certificate is useless without its key and the other way round.
  for (const [given, needed] of [["mqtt-cert", "mqtt-key"], ["mqtt-key", "mqtt-cert"]] as const) {
    if (v[given] !== undefined && v[needed] === undefined) {
      throw new ConfigError(`setting ${needed} is missing: --${given} needs --${needed} too (the client certificate and its private key)`);
    }
  }
  let tables;
  try {
    tables = (v.tables as string[] | undefined)?.map(parseTableRef);
  } catch (error) {
    throw new ConfigError(`setting tables: ${(error as Error).message}`);
  }
  for (const name of Object.keys(parsed.tableSettings)) {
    if (tables && !tables.some((t) => `${t.schema}.${t.table}` === name)) {
      throw new ConfigError(`setting tables: ${name} has settings but is not in the table list: add it to tables`);
    }
  }
  const config: ServiceConfig = {
    databaseUrl: v["database-url"] as string,
    mqttUrl: v["mqtt-url"] as string,
    tables,
    publication: v.publication as string,
    slot: v.slot as string,
    qos: Number(v.qos) as 0 | 1 | 2,
    healthPort: v["health-port"] as number | undefined,
    mqttUsername: v["mqtt-username"] as string | undefined,
    mqttPassword: v["mqtt-password"] as string | undefined,
    mqttCaFile: v["mqtt-ca"] as string | undefined,
    mqttCertFile: v["mqtt-cert"] as string | undefined,
    mqttKeyFile: v["mqtt-key"] as string | undefined,
    mqttClientId: v["mqtt-client-id"] as string | undefined,
    maxInFlight: v["max-in-flight"] as number,
    maxMessageBytes: v["max-message-bytes"] as number,
    onOversize: v["on-oversize"] as OversizeRule,
    deadLetterTopic: v["dead-letter-topic"] as string,
    batchEvents: v["batch-events"] as number,
    batchBytes: v["batch-bytes"] as number,
    standbyPollMs: v["standby-poll-ms"] as number,
    statusIntervalMs: v["status-interval-ms"] as number,
    tableSettings: parsed.tableSettings,
  };
  return { config, logLevel: v["log-level"] as LogLevel };
}

export async function runCommand(argv: string[]): Promise<number> {
  const settings = runConfig(argv);
  if (settings === "help") {
    process.stdout.write(helpText(USAGE, RUN_SETTINGS, EXAMPLES));
    return 0;
  }
  const logger = createLogger(settings.logLevel);
  const service = new CdcService(settings.config, logger);
  const onSignal = (signal: string) => {
    logger.info({ signal }, "stopping");
    void service.stop();
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  try {
    await service.run();
    return 0;
  } catch (error) {
    // Logged for log collectors; main.ts then prints the same problem as the plain last line.
    logger.fatal((error as Error).message.split("\n")[0]!);
    throw error;
  }
}
