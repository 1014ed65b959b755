import type { ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort, waitFor } from "./ports.js";
import { exited, spawnTracked } from "./processes.js";

// bench:compare --same-harness points the bench at another build's command (the "before" side).
const BIN = process.env.TERA_CDC_BENCH_BIN ?? join(import.meta.dirname, "..", "..", "bin", "tera-cdc.js");

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

const dataDirs = new Map<string, string>();
process.on("exit", () => {
  for (const dir of dataDirs.values()) rmSync(dir, { recursive: true, force: true });
});

/**
 * `run` keeps its stream record in --data-dir (default ./.tera-cdc): each database a test streams
 * from gets a folder of its own for this test process, so that a restart of tera-cdc finds its
 * record again while tests on other clusters (the same slot name, another system) do not share it.
 * A --data-dir or TERA_CDC_DATA_DIR given by the test wins.
 */
function dataDirFor(args: string[]): string {
  const at = args.indexOf("--database-url");
  const key = at >= 0 ? (args[at + 1] ?? "") : "";
  let dir = dataDirs.get(key);
  if (!dir) {
    dir = mkdtempSync(join(tmpdir(), "tera-cdc-data-"));
    dataDirs.set(key, dir);
  }
  return dir;
}

/**
 * Runs the real command as a user does, `bin/tera-cdc.js <args>` through its shebang (so with the
 * same Node flags), on the dist/ that test/global-setup.ts built from the current sources.
 */
export function runCli(args: string[], env: Record<string, string> = {}): { child: ChildProcess; output: () => { stdout: string; stderr: string } } {
  const child = spawnTracked(BIN, args, {
    env: { ...process.env, TERA_CDC_DATA_DIR: dataDirFor(args), ...env, TERA_CDC_LOG_LEVEL: env.TERA_CDC_LOG_LEVEL ?? "info" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout?.on("data", (d: Buffer) => (stdout += d.toString()));
  child.stderr?.on("data", (d: Buffer) => (stderr += d.toString()));
  return { child, output: () => ({ stdout, stderr }) };
}

/** `tera-cdc run` against the given database and broker, with a health port of its own. */
export async function startCdc(options: { databaseUrl: string; mqttUrl: string; args?: string[]; env?: Record<string, string>; waitStreaming?: boolean } | { databaseUrl: string; redisUrl: string; args?: string[]; env?: Record<string, string>; waitStreaming?: boolean }): Promise<CdcProcess> {
  const healthPort = await freePort();
  const target = "redisUrl" in options ? ["--redis-url", options.redisUrl] : ["--mqtt-url", options.mqttUrl];
  const { child, output } = runCli(
    ["run", "--database-url", options.databaseUrl, ...target, "--health-port", String(healthPort), ...(options.args ?? [])],
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
