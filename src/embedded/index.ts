import { mkdirSync } from "node:fs";
import { resolve } from "node:path";
import type { Logger } from "../ops/log.js";
import { type EmbeddedBroker, startEmbeddedBroker } from "./broker.js";
import { choosePort, portCandidates } from "./ports.js";
import { type EmbeddedPostgres, startEmbeddedPostgres, stopOrphanedPostgres } from "./postgres.js";
import { isProcessAlive, readState, writeState } from "./state.js";

export { embeddedBanner } from "./banner.js";

/** Ports tried when the standard one (5432, 1883) is taken, before any free port. */
const POSTGRES_FALLBACK_PORT = 54329;
const BROKER_FALLBACK_PORT = 18830;
const ATTEMPTS = 3;

export interface EmbeddedServices {
  readonly databaseUrl: string;
  readonly mqttUrl: string;
  /** Absolute data folder, when the database is embedded. */
  readonly databaseDir?: string;
  readonly brokerEmbedded: boolean;
  stop(): Promise<void>;
}

/**
 * The embedded default: starts PostgreSQL when no database URL is configured and an MQTT broker
 * when no broker URL is, each on the port it had last time when free (printed URLs stay valid),
 * else its standard port, a fallback port or any free one. Data and chosen ports live in `dataDir`.
 */
export async function startEmbeddedServices(options: { databaseUrl?: string; mqttUrl?: string; dataDir: string; logger: Logger }): Promise<EmbeddedServices> {
  const { logger } = options;
  const dataDir = resolve(options.dataDir);
  mkdirSync(dataDir, { recursive: true });
  const state = readState(dataDir);
  if (!options.databaseUrl && state.pid && state.pid !== process.pid && isProcessAlive(state.pid)) {
    throw new Error(`another tera-cdc (pid ${state.pid}) uses the embedded data folder ${dataDir}: stop it, or give another --data-dir`);
  }
  let postgres: EmbeddedPostgres | undefined;
  let broker: EmbeddedBroker | undefined;
  const stop = async () => {
    await broker?.stop().catch((error: Error) => logger.warn({ error: error.message }, "embedded broker stop failed"));
    await postgres?.stop();
    writeState(dataDir, { ...readState(dataDir), pid: undefined });
  };
  try {
    if (!options.databaseUrl) {
      writeState(dataDir, { ...state, pid: process.pid });
      await stopOrphanedPostgres(dataDir, logger);
      postgres = await withFreePort(portCandidates(state.postgresPort, 5432, POSTGRES_FALLBACK_PORT), (port) =>
        startEmbeddedPostgres({ dataDir, port, logger }),
      );
      logger.info({ port: postgres.port, dir: dataDir, sampleLoaded: postgres.loadedSample }, "embedded PostgreSQL started");
    }
    if (!options.mqttUrl) {
      broker = await withFreePort(portCandidates(state.brokerPort, 1883, BROKER_FALLBACK_PORT), startEmbeddedBroker);
      logger.info({ port: broker.port }, "embedded MQTT broker started");
    }
  } catch (error) {
    await stop();
    throw error;
  }
  writeState(dataDir, {
    postgresPort: postgres?.port ?? state.postgresPort,
    brokerPort: broker?.port ?? state.brokerPort,
    pid: postgres ? process.pid : undefined,
  });
  return {
    databaseUrl: options.databaseUrl ?? postgres!.url,
    mqttUrl: options.mqttUrl ?? broker!.url,
    databaseDir: postgres ? dataDir : undefined,
    brokerEmbedded: broker !== undefined,
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
