import { ConfigError, parseSettings } from "../config.js";
import { createLogger } from "../ops/log.js";
import { MqttLogForwarder } from "../ops/log-mqtt.js";
import { readState, writeState } from "../embedded/state.js";
import { embeddedBanner, type EmbeddedBrokerChoice, type EmbeddedServices, startEmbeddedServices } from "../embedded/index.js";
import { mergePreset, type PresetName, presetTables } from "../preset/index.js";
import { CdcService } from "../service/service.js";
import type { ServiceConfig } from "../service/config.js";
import { signingKeyOf } from "../signing-key.js";
import { redisCa } from "../sinks/redis/connection.js";
import { parseTableRef } from "../source/table-ref.js";
import { helpText } from "./help.js";
import { RUN_SETTINGS } from "./run-settings.js";
import { resolve } from "node:path";

const USAGE = `Usage: tera-cdc run [--database-url URL] [--mqtt-url URL | --redis-url URL] [--tables t1,t2] [--preset opentera] [flags]

Without --database-url it starts an embedded PostgreSQL 15 with the sample OpenTera database (data
in --data-dir, preset opentera); without --mqtt-url, an embedded MQTT broker. It prints their URLs.`;
const EXAMPLES = [
  "tera-cdc run   (what npm start runs: embedded PostgreSQL and broker, nothing else needed)",
  "tera-cdc run --preset opentera --database-url postgres://tera_cdc@db/opentera --mqtt-url mqtt://broker:1883",
  "tera-cdc run --database-url postgres://cdc@db/opentera --mqtt-url mqtt://broker:1883 --tables t_devices,t_users",
  "tera-cdc run --preset opentera --database-url postgres://tera_cdc@db/opentera --redis-url redis://redis:6379   (OpenTera's own transport)",
  "TERA_CDC_DATABASE_URL=postgres://cdc@db/app TERA_CDC_MQTT_URL=mqtts://broker:8883 tera-cdc run --mqtt-ca ca.pem",
  "tera-cdc run --config tera-cdc.yaml --health-port 8080",
];

/** What `run` starts itself because no URL was configured for it (src/embedded). */
export interface EmbeddedRequest {
  readonly database: boolean;
  readonly broker: boolean;
  readonly dataDir: string;
  readonly brokerKind: EmbeddedBrokerChoice;
  /** With the embedded database and broker: also the development gateway (the live page). */
  readonly gateway: boolean;
}

/** The qos setting's values (text, as settings are) as MQTT QoS levels. */
const QOS_LEVELS = { "0": 0, "1": 1, "2": 2 } as const;

/**
 * Turns validated settings into the service's configuration (exit code 2 on a bad value).
 * A URL that `embedded` says is started by `run` itself is empty here and filled in by runCommand.
 */
export function runConfig(
  argv: string[],
  env: NodeJS.ProcessEnv = process.env,
): { config: ServiceConfig; embedded: EmbeddedRequest; preset?: PresetName } | "help" {
  const parsed = parseSettings(RUN_SETTINGS, argv, env);
  if (parsed.help) return "help";
  if (parsed.positional.length > 0) throw new ConfigError(`unexpected argument "${parsed.positional[0]}": run takes only flags`);
  const v = parsed.values;
  // No URL: `run` starts an embedded PostgreSQL or broker (`npm start` on a fresh machine).
  if (v["redis-url"] !== undefined && v["mqtt-url"] !== undefined) {
    throw new ConfigError("settings mqtt-url and redis-url are both set: give one of them (tera-cdc publishes to one broker)");
  }
  if (v["redis-url"] !== undefined && v["signing-key-file"] !== undefined) {
    throw new ConfigError("setting signing-key-file needs MQTT 5 user properties to carry the signature, which Redis pub/sub has not: drop it with --redis-url");
  }
  if (v["redis-url"] !== undefined && v["log-to-mqtt"] === true) {
    throw new ConfigError("setting log-to-mqtt needs an MQTT broker: drop --log-to-mqtt when publishing to Redis (--redis-url)");
  }
  const embedded: EmbeddedRequest = { database: v["database-url"] === undefined, broker: v["mqtt-url"] === undefined && v["redis-url"] === undefined, dataDir: v["data-dir"], brokerKind: v["embedded-broker"], gateway: v["embedded-gateway"] };
  // A client certificate is useless without its key and the other way round.
  for (const [given, needed] of [["mqtt-cert", "mqtt-key"], ["mqtt-key", "mqtt-cert"]] as const) {
    if (v[given] !== undefined && v[needed] === undefined) {
      throw new ConfigError(`setting ${needed} is missing: --${given} needs --${needed} too (the client certificate and its private key)`);
    }
  }
  // PostgreSQL's own rule for slot names, checked before anything connects.
  if (!/^[a-z0-9_]{1,63}$/.test(v.slot)) {
    throw new ConfigError(`setting slot: ${JSON.stringify(v.slot.slice(0, 80))} is not a replication slot name: lower-case letters, digits and _ only, at most 63 (for example tera_cdc)`);
  }
  let tables;
  try {
    tables = v.tables?.map(parseTableRef);
  } catch (error) {
    throw new ConfigError(`setting tables: ${(error as Error).message}`);
  }
  for (const name of Object.keys(parsed.tableSettings)) {
    if (tables && !tables.some((t) => `${t.schema}.${t.table}` === name)) {
      throw new ConfigError(`setting tables: ${name} has settings but is not in the table list: add it to tables`);
    }
  }
  let tableSettings = parsed.tableSettings;
  // The embedded database holds the sample OpenTera schema: its preset unless tables are given.
  const preset = v.preset ?? (embedded.database && !tables ? "opentera" : undefined);
  if (preset) {
    const selection = mergePreset(presetTables(preset), {
      tables: tables?.map((t) => `${t.schema}.${t.table}`),
      // A `tables:` mapping of settings adds to the preset; a list (flag, env or file) selects.
      tablesReplacePreset:
        argv.some((a) => a === "--tables" || a.startsWith("--tables=")) || Boolean(env.TERA_CDC_TABLES) || Object.keys(parsed.tableSettings).length === 0,
      tableSettings,
    });
    tables = selection.tables.map(parseTableRef);
    tableSettings = selection.tableSettings;
  }
  const config: ServiceConfig = {
    source: {
      databaseUrl: v["database-url"] ?? "",
      tables,
      publication: v.publication,
      slot: v.slot,
      statusIntervalMs: v["status-interval-ms"],
      standbyPollMs: v["standby-poll-ms"],
      dataDir: v["data-dir"],
      startAfresh: v["start-afresh"],
    },
    sink: {
      mqtt: {
        url: v["mqtt-url"] ?? "",
        qos: QOS_LEVELS[v.qos],
        username: v["mqtt-username"],
        password: v["mqtt-password"],
        caFile: v["mqtt-ca"],
        certFile: v["mqtt-cert"],
        keyFile: v["mqtt-key"],
        clientId: v["mqtt-client-id"],
      },
      redisUrl: v["redis-url"],
      redisCa: redisCa(v),
      maxInFlight: v["max-in-flight"],
    },
    pipeline: {
      maxMessageBytes: v["max-message-bytes"],
      onOversize: v["on-oversize"],
      deadLetterTopic: v["dead-letter-topic"],
      batchEvents: v["batch-events"],
      batchBytes: v["batch-bytes"],
      signingKey: signingKeyOf(v),
      tableSettings,
    },
    snapshot: {
      initial: v.snapshot === "initial",
      chunkSize: v["snapshot-chunk-size"],
      models: v["snapshot-models"] ?? [],
      maxRunning: v["snapshot-max-running"],
      statementTimeoutMs: v["snapshot-statement-timeout"] * 1000,
      moduleName: v["module-name"],
      // The embedded broker authenticates and only its local identity may publish RPC requests
      // (src/embedded/broker.ts): RPC is on there unless told otherwise.
      rpc: embedded.broker && !rpcGiven(argv, env) ? true : v.rpc,
      rpcPolicy: {
        replyPrefixes: v["rpc-reply-prefixes"],
        operatorPrefixes: v["rpc-operator-prefixes"],
        maxRequestBytes: v["rpc-max-request-bytes"],
      },
    },
    ops: {
      logLevel: v["log-level"],
      logToMqtt: v["log-to-mqtt"],
      healthPort: v["health-port"],
      healthHost: v["health-host"],
    },
  };
  return { config, embedded, preset };
}

/** Whether --rpc was set by flag, environment or config file (its default aside). */
function rpcGiven(argv: string[], env: NodeJS.ProcessEnv): boolean {
  const withoutDefault = RUN_SETTINGS.map((s) => (s.name === "rpc" ? { ...s, default: undefined } : s));
  return parseSettings(withoutDefault, argv, env).values.rpc !== undefined;
}

export async function runCommand(argv: string[]): Promise<number> {
  const settings = runConfig(argv);
  if (settings === "help") {
    process.stdout.write(helpText(USAGE, RUN_SETTINGS, EXAMPLES));
    return 0;
  }
  // --log-to-mqtt: the log lines also go to the broker, connected once its URL is final (embedded or not).
  const mqttLogs = settings.config.ops.logToMqtt ? new MqttLogForwarder("tera-cdc") : undefined;
  const logger = createLogger(settings.config.ops.logLevel, { tee: mqttLogs?.write });
  let service: CdcService | null = null;
  let stopRequested = false;
  const onSignal = (signal: string) => {
    // A terminal's Ctrl-C can reach the process more than once (npm and the shell both relay it).
    if (stopRequested) return;
    logger.info({ signal }, "stopping");
    stopRequested = true;
    void service?.stop();
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  let config = settings.config;
  let embedded: EmbeddedServices | undefined;
  let banner: NodeJS.Timeout | undefined;
  let gateway: { stop(): Promise<void> } | undefined;
  try {
    if (settings.embedded.database || settings.embedded.broker) {
      embedded = await startEmbeddedServices({
        databaseUrl: settings.embedded.database ? undefined : config.source.databaseUrl,
        mqttUrl: settings.embedded.broker ? undefined : config.sink.mqtt.url,
        dataDir: settings.embedded.dataDir,
        broker: settings.embedded.brokerKind,
        logger,
      });
      const mqtt = { ...config.sink.mqtt, url: embedded.mqttUrl };
      config = { ...config, source: { ...config.source, databaseUrl: embedded.databaseUrl }, sink: { ...config.sink, mqtt } };
      // The embedded broker admits its generated identities only: run publishes as tera-cdc's.
      if (embedded.broker) {
        config = { ...config, sink: { ...config.sink, mqtt: { ...mqtt, username: embedded.broker.publisher.username, password: embedded.broker.publisher.password } } };
      }
      // RPC is on by default only here: the embedded broker admits its generated identities only
      // and lets only the local commands' identity publish on the RPC topic (docs/security.md).
      if (embedded.broker && config.snapshot.rpc === undefined) config = { ...config, snapshot: { ...config.snapshot, rpc: true } };
      const printed = embedded;
      const printBanner = async () => {
        const page = settings.embedded.gateway && printed.databaseDir && printed.broker ? await startPage(printed) : undefined;
        if (stopRequested) return;
        process.stdout.write(
          embeddedBanner({
            mqttUrl: config.sink.mqtt.url,
            database: printed.databaseDir ? { url: printed.printableDatabaseUrl!, dir: printed.databaseDir, pgpassFile: printed.pgpassFile! } : undefined,
            broker: printed.broker,
            dataDirFlag: resolve(settings.embedded.dataDir) === resolve(".tera-cdc") ? undefined : settings.embedded.dataDir,
            page,
            preset: settings.preset,
          }),
        );
      };
      // The development gateway: the live page of the sample database, on an MQTT 5 broker only.
      const startPage = async (services: EmbeddedServices): Promise<{ url: string } | { unavailable: string }> => {
        if (services.broker!.protocolVersion !== 5) return { unavailable: "the gateway needs MQTT 5: install mosquitto (apt-get install mosquitto) and start again" };
        try {
          const { startEmbeddedGateway } = await import("../embedded/gateway.js");
          const started = await startEmbeddedGateway({
            mqttUrl: services.mqttUrl,
            broker: services.secrets.broker.local,
            secret: services.secrets.gatewaySecret,
            moduleName: config.snapshot.moduleName,
            savedPort: readState(services.dataDir).gatewayPort,
            logger: logger.child({ component: "gateway" }),
          });
          gateway = started;
          writeState(services.dataDir, { ...readState(services.dataDir), gatewayPort: started.port });
          return { url: started.pageUrl };
        } catch (error) {
          logger.warn(`development gateway not started: ${(error as Error).message.split("\n")[0]}`);
          return { unavailable: `the development gateway did not start (${(error as Error).message.split("\n")[0]})` };
        }
      };
      banner = setInterval(() => {
        if (service?.currentState !== "streaming") return;
        clearInterval(banner);
        void printBanner();
      }, 100);
    }
    if (stopRequested) return 0;
    mqttLogs?.connect(config.sink.mqtt.url, config.sink.mqtt);
    service = new CdcService(config, logger);
    await service.run();
    return 0;
  } catch (error) {
    // Logged for log collectors; main.ts then prints the same problem as the plain last line.
    logger.fatal((error as Error).message.split("\n")[0]!);
    throw error;
  } finally {
    clearInterval(banner);
    await gateway?.stop().catch((error: Error) => logger.warn(`development gateway stop failed: ${error.message}`));
    await mqttLogs?.close();
    await embedded?.stop();
  }
}
