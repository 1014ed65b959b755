import { mkdirSync } from "node:fs";
import { resolve } from "node:path";
import type { Logger } from "../ops/log.js";
import { type EmbeddedBroker, type EmbeddedBrokerKind, mosquittoAvailable, startEmbeddedBroker, stopOrphanedMosquitto } from "./broker.js";
import { choosePort, portCandidates } from "./ports.js";
import { type EmbeddedPostgres, startEmbeddedPostgres, stopOrphanedPostgres } from "./postgres.js";
import { type BrokerIdentity, ensureSecrets, type EmbeddedSecrets, pgpassPath, writePgpass } from "./secrets.js";
import { isProcessAlive, readState, writeState } from "./state.js";

export { embeddedBanner } from "./banner.js";

/** Ports tried when the standard one (5432, 1883) is taken, before any free port. */
const POSTGRES_FALLBACK_PORT = 54329;
const BROKER_FALLBACK_PORT = 18830;
const ATTEMPTS = 3;

export type EmbeddedBrokerChoice = "auto" | EmbeddedBrokerKind;

export interface EmbeddedServices {
  /** With the generated password when embedded: for tera-cdc only, never printed. */
  readonly databaseUrl: string;
  readonly mqttUrl: string;
  /** Absolute data folder, when the database is embedded. */
  readonly databaseDir?: string;
  /** The embedded database's URL without its password, and the file psql reads it from. */
  readonly printableDatabaseUrl?: string;
  readonly pgpassFile?: string;
  /** The embedded broker's kind, when the broker is embedded. */
  readonly broker?: { readonly kind: EmbeddedBrokerKind; readonly protocolVersion: 4 | 5; readonly publisher: BrokerIdentity };
  readonly secrets: EmbeddedSecrets;
  /** Absolute data folder. */
  readonly dataDir: string;
  stop(): Promise<void>;
}

/**
 * The embedded default: starts PostgreSQL when no database URL is configured and an MQTT broker
 * when no broker URL is, each on the port it had last time when free (printed URLs stay valid),
 * else its standard port, a fallback port or any free one. Data and chosen ports live in `dataDir`.
 */
export async function startEmbeddedServices(options: {
  databaseUrl?: string;
  mqttUrl?: string;
  dataDir: string;
  logger: Logger;
  /** auto: Mosquitto (MQTT 5) when installed, else aedes (MQTT 3.1.1). */
  broker?: EmbeddedBrokerChoice;
}): Promise<EmbeddedServices> {
  const { logger } = options;
  const dataDir = resolve(options.dataDir);
  mkdirSync(dataDir, { recursive: true });
  const state = readState(dataDir);
  if ((!options.databaseUrl || !options.mqttUrl) && state.pid && state.pid !== process.pid && isProcessAlive(state.pid)) {
    throw new Error(`another tera-cdc (pid ${state.pid}) uses the embedded data folder ${dataDir}: stop it, or give another --data-dir`);
  }
  const secrets = ensureSecrets(dataDir);
  let postgres: EmbeddedPostgres | undefined;
  let broker: EmbeddedBroker | undefined;
  const stop = async () => {
    await broker?.stop().catch((error: Error) => logger.warn({ error: error.message }, "embedded broker stop failed"));
    await postgres?.stop();
    writeState(dataDir, { ...readState(dataDir), pid: undefined, mosquittoPid: undefined });
  };
  try {
    writeState(dataDir, { ...state, pid: process.pid });
    if (!options.databaseUrl) {
      await stopOrphanedPostgres(dataDir, logger);
      postgres = await withFreePort(portCandidates(state.postgresPort, 5432, POSTGRES_FALLBACK_PORT), (port) =>
        startEmbeddedPostgres({ dataDir, port, password: secrets.postgresPassword, logger }),
      );
      writePgpass(dataDir, postgres.port, secrets.postgresPassword);
      logger.info({ port: postgres.port, dir: dataDir, sampleLoaded: postgres.loadedSample }, "embedded PostgreSQL started");
    }
    if (!options.mqttUrl) {
      const choice = options.broker ?? "auto";
      if (choice === "mosquitto" && !mosquittoAvailable()) {
        throw new Error("embedded broker mosquitto: the mosquitto binary is not installed (apt-get install mosquitto), or use --embedded-broker auto");
      }
      const kind: EmbeddedBrokerKind = choice === "auto" ? (mosquittoAvailable() ? "mosquitto" : "aedes") : choice;
      await stopOrphanedMosquitto(dataDir, state.mosquittoPid, logger);
      broker = await withFreePort(portCandidates(state.brokerPort, 1883, BROKER_FALLBACK_PORT), (port) =>
        startEmbeddedBroker(kind, { port, dataDir, publisher: secrets.broker.publisher, local: secrets.broker.local, logger }),
      );
      logger.info({ port: broker.port, broker: broker.kind, mqtt: broker.protocolVersion === 5 ? "5" : "3.1.1" }, "embedded MQTT broker started");
    }
  } catch (error) {
    await stop();
    throw error;
  }
  writeState(dataDir, {
    postgresPort: postgres?.port ?? state.postgresPort,
    brokerPort: broker?.port ?? state.brokerPort,
    pid: process.pid,
    mosquittoPid: broker?.pid,
  });
  return {
    databaseUrl: options.databaseUrl ?? postgres!.url,
    mqttUrl: options.mqttUrl ?? broker!.url,
    databaseDir: postgres ? dataDir : undefined,
    printableDatabaseUrl: postgres?.printableUrl,
    pgpassFile: postgres ? pgpassPath(dataDir) : undefined,
    broker: broker ? { kind: broker.kind, protocolVersion: broker.protocolVersion, publisher: secrets.broker.publisher } : undefined,
    secrets,
    dataDir,
    stop,
  };
}

/** Starts on the first free candidate; a port taken between the check and the start is skipped. */
async function withFreePort<T>(candidates: (number | undefined)[], start: (port: number) => Promise<T>): Promise<T> {
  let lastError: Error | undefined;
  const remaining = [...candidates];
  for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
    const port = await choosePort(remaining);
    try {
      return await start(port);
    } catch (error) {
      lastError = error as Error;
      if (!/could not bind|EADDRINUSE|address already in use/i.test(lastError.message)) throw error;
      const index = remaining.indexOf(port);
      if (index >= 0) remaining.splice(index, 1);
    }
  }
  throw lastError!;
}
