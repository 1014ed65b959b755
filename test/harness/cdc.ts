import type { ChildProcess } from "node:child_process";
import { join } from "node:path";
import { freePort, waitFor } from "./ports.js";
import { exited, spawnTracked } from "./processes.js";

const BIN = join(import.meta.dirname, "..", "..", "bin", "tera-cdc.js");

export interface CdcProcess {
  readonly child: ChildProcess;
  readonly healthPort: number;
  /** Everything it wrote to stderr (its logs) so far. */
  logs(): string;
  health(): Promise<{ status: number; body: Record<string, unknown> }>;
  waitForStreaming(timeoutMs?: number): Promise<void>;
  waitForLog(pattern: RegExp, timeoutMs?: number): Promise<string>;
  /** SIGTERM and the exit code. */
  stop(): Promise<number | null>;
  kill(): Promise<void>;
}

/**
 * Runs the real command as a user does, `bin/tera-cdc.js <args>` through its shebang (so with the
 * same Node flags), on the dist/ that test/global-setup.ts built from the current sources.
 */
export function runCli(args: string[], env: Record<string, string> = {}): { child: ChildProcess; output: () => { stdout: string; stderr: string } } {
  const child = spawnTracked(BIN, args, {
    env: { ...process.env, ...env, TERA_CDC_LOG_LEVEL: env.TERA_CDC_LOG_LEVEL ?? "info" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout?.on("data", (d: Buffer) => (stdout += d.toString()));
  child.stderr?.on("data", (d: Buffer) => (stderr += d.toString()));
  return { child, output: () => ({ stdout, stderr }) };
}

/** `tera-cdc run` against the given database and broker, with a health port of its own. */
export async function startCdc(options: { databaseUrl: string; mqttUrl: string; args?: string[]; env?: Record<string, string>; waitStreaming?: boolean }): Promise<CdcProcess> {
  const healthPort = await freePort();
  const { child, output } = runCli(
    ["run", "--database-url", options.databaseUrl, "--mqtt-url", options.mqttUrl, "--health-port", String(healthPort), ...(options.args ?? [])],
    options.env,
  );
  const health = async () => {
    const response = await fetch(`http://127.0.0.1:${healthPort}/healthz`);
    return { status: response.status, body: (await response.json()) as Record<string, unknown> };
  };
  const processHandle: CdcProcess = {
    child,
    healthPort,
    logs: () => output().stderr,
    health,
    async waitForStreaming(timeoutMs = 30_000) {
      await waitFor("tera-cdc to stream", async () => {
        if (child.exitCode !== null) throw new Error(`tera-cdc exited with ${child.exitCode}: ${output().stderr.slice(-3000)}`);
        return (await health()).status === 200;
      }, timeoutMs, 100);
    },
    async waitForLog(pattern, timeoutMs = 30_000) {
      return waitFor(`log line ${pattern}`, () => {
        const match = pattern.exec(output().stderr);
        if (match) return match[0];
        if (child.exitCode !== null) throw new Error(`tera-cdc exited with ${child.exitCode}: ${output().stderr.slice(-3000)}`);
        return undefined;
      }, timeoutMs);
    },
    async stop() {
      child.kill("SIGTERM");
      return exited(child, 30_000);
    },
    async kill() {
      child.kill("SIGKILL");
      await exited(child);
    },
  };
  if (options.waitStreaming !== false) await processHandle.waitForStreaming();
  return processHandle;
}
