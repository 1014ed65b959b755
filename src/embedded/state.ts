import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";

/** What the embedded default remembers between runs, in `<data-dir>/embedded.json`. */
export interface EmbeddedState {
  /** Ports chosen last time, tried first so that printed URLs stay valid across restarts. */
  postgresPort?: number;
  brokerPort?: number;
  /** Port of the development gateway (the live page). */
  gatewayPort?: number;
  /** The tera-cdc process using the folder now (cleared on a clean stop). */
  pid?: number;
  /** The embedded Mosquitto's process (cleared on a clean stop), stopped by the next start if left running. */
  mosquittoPid?: number;
}

const FILE = "embedded.json";

export function readState(dataDir: string): EmbeddedState {
  try {
    const parsed = JSON.parse(readFileSync(join(dataDir, FILE), "utf8")) as unknown;
    return parsed !== null && typeof parsed === "object" ? (parsed as EmbeddedState) : {};
  } catch {
    return {};
  }
}

export function writeState(dataDir: string, state: EmbeddedState): void {
  writeFileSync(join(dataDir, FILE), `${JSON.stringify(state, null, 2)}\n`);
}

export function isProcessAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}
