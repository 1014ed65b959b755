import { resolve } from "node:path";
import type { SettingSpec, SettingValues } from "../config.js";
import { EMBEDDED_DATABASE } from "./postgres.js";
import { readSecrets } from "./secrets.js";
import { isProcessAlive, readState } from "./state.js";

/** The `data-dir` setting of the local commands: where `npm start` keeps its embedded services. */
export const LOCAL_DATA_DIR_SETTING: SettingSpec = {
  name: "data-dir",
  env: "TERA_CDC_DATA_DIR",
  kind: { type: "string" },
  default: ".tera-cdc",
  help: "data folder of a running embedded default (npm start): its broker, database and generated credentials are used when no URL or no user name is given",
};

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
export function withLocalServices(specs: readonly SettingSpec[], values: SettingValues): SettingValues {
  const has = (name: string) => specs.some((s) => s.name === name);
  const dataDir = resolve((values["data-dir"] as string | undefined) ?? ".tera-cdc");
  const secrets = readSecrets(dataDir);
  if (!secrets) return values;
  const state = readState(dataDir);
  const running = state.pid !== undefined && isProcessAlive(state.pid);
  const out: SettingValues = { ...values };
  if (has("mqtt-url") && state.brokerPort !== undefined) {
    if (out["mqtt-url"] === undefined && running) out["mqtt-url"] = `mqtt://127.0.0.1:${state.brokerPort}`;
    if (typeof out["mqtt-url"] === "string" && sameLocalServer(out["mqtt-url"], state.brokerPort) && out["mqtt-username"] === undefined && has("mqtt-username")) {
      out["mqtt-username"] = secrets.broker.local.username;
      out["mqtt-password"] = secrets.broker.local.password;
    }
  }
  if (has("database-url") && state.postgresPort !== undefined) {
    const port = state.postgresPort;
    if (out["database-url"] === undefined && running) out["database-url"] = `postgres://postgres@127.0.0.1:${port}/${EMBEDDED_DATABASE}`;
    const url = typeof out["database-url"] === "string" ? sameLocalServer(out["database-url"], port) : undefined;
    if (url && url.username === "postgres" && url.password === "") {
      url.password = encodeURIComponent(secrets.postgresPassword);
      out["database-url"] = url.toString();
    }
  }
  return out;
}
