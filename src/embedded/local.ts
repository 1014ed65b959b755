import { resolve } from "node:path";
import type { SettingSpec } from "../config.js";
import type { MqttCredentialSettings } from "../mqtt/connect.js";
import { EMBEDDED_DATABASE } from "./postgres.js";
import { readSecrets } from "./secrets.js";
import { isProcessAlive, readState } from "./state.js";

/** The `data-dir` setting of the local commands: where `npm start` keeps its embedded services. */
export const LOCAL_DATA_DIR_SETTING = {
  name: "data-dir",
  env: "TERA_CDC_DATA_DIR",
  kind: { type: "string" },
  default: ".tera-cdc",
  help: "data folder of a running embedded default (npm start): its broker, database and generated credentials are used when no URL or no user name is given",
} as const satisfies SettingSpec;

/** The settings withLocalServices reads and fills (a command has some of them). */
export interface LocalServiceSettings extends Pick<MqttCredentialSettings, "mqtt-username" | "mqtt-password"> {
  readonly "data-dir"?: string | undefined;
  readonly "mqtt-url"?: string | undefined;
  readonly "database-url"?: string | undefined;
}

function isLoopback(hostname: string): boolean {
  return hostname === "127.0.0.1" || hostname === "localhost" || hostname === "[::1]";
}

function sameLocalServer(url: string, port: number | undefined): URL | undefined {
  if (port === undefined) return undefined;
  try {
    const parsed = new URL(url);
    return isLoopback(parsed.hostname) && Number(parsed.port) === port ? parsed : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Fills in what the embedded default (`npm start`) generated, so that its credentials are never
 * printed nor typed: with no URL, the running embedded broker or database of `data-dir`; with a
 * URL of that broker or database and no user name or password, its generated credentials (the
 * broker's local identity: it reads every topic and may publish RPC requests only). Only settings
 * the command has (`specs`) are filled; a value given by the user is never replaced.
 */
export function withLocalServices<V extends LocalServiceSettings>(specs: readonly SettingSpec[], values: V): V {
  return { ...values, ...localServiceFills(specs, values) };
}

/** The values withLocalServices puts in place of the missing ones. */
function localServiceFills(specs: readonly SettingSpec[], values: LocalServiceSettings): LocalServiceSettings {
  const has = (name: string) => specs.some((s) => s.name === name);
  const dataDir = resolve(values["data-dir"] ?? ".tera-cdc");
  const secrets = readSecrets(dataDir);
  if (!secrets) return {};
  const state = readState(dataDir);
  const running = state.pid !== undefined && isProcessAlive(state.pid);
  const fills: { -readonly [K in keyof LocalServiceSettings]: LocalServiceSettings[K] } = {};
  if (has("mqtt-url") && state.brokerPort !== undefined) {
    const mqttUrl = values["mqtt-url"] ?? (running ? `mqtt://127.0.0.1:${state.brokerPort}` : undefined);
    if (mqttUrl !== values["mqtt-url"]) fills["mqtt-url"] = mqttUrl;
    if (mqttUrl !== undefined && sameLocalServer(mqttUrl, state.brokerPort) && values["mqtt-username"] === undefined && has("mqtt-username")) {
      fills["mqtt-username"] = secrets.broker.local.username;
      fills["mqtt-password"] = secrets.broker.local.password;
    }
  }
  if (has("database-url") && state.postgresPort !== undefined) {
    const port = state.postgresPort;
    const databaseUrl = values["database-url"] ?? (running ? `postgres://postgres@127.0.0.1:${port}/${EMBEDDED_DATABASE}` : undefined);
    if (databaseUrl !== values["database-url"]) fills["database-url"] = databaseUrl;
    const url = databaseUrl !== undefined ? sameLocalServer(databaseUrl, port) : undefined;
    if (url && url.username === "postgres" && url.password === "") {
      url.password = encodeURIComponent(secrets.postgresPassword);
      fills["database-url"] = url.toString();
    }
  }
  return fills;
}
