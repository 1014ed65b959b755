import type { ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, connect as tcpConnect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort, waitFor } from "./ports.js";
import { startServerContainer, useContainers } from "./containers.js";
import { exited, type RestartableServer, spawnTracked } from "./processes.js";

const MOSQUITTO = process.env.TERA_CDC_MOSQUITTO ?? "/usr/sbin/mosquitto";

export interface Broker extends RestartableServer {
  /** The broker's folder (its configuration, password and certificate files). */
  readonly dir: string;
}

export interface BrokerOptions {
  /** Extra mosquitto.conf lines (listener settings, ACLs, TLS). */
  readonly config?: string[];
  /** Write extra files into the broker's folder before start (password files, certificates). */
  readonly files?: Record<string, string>;
  readonly scheme?: "mqtt" | "mqtts";
  /** Listen on this port instead of a free one (local processes only). */
  readonly port?: number;
}

/**
 * A Mosquitto 2 broker of the test's own on a free port. Its limits are raised for bulk streams:
 * the defaults (20 in flight, 1,000 queued) silently drop QoS 1 messages to a slow subscriber.
 */
function configLines(options: BrokerOptions, port: number, dir: string, bind: string): string[] {
  const hasListener = (options.config ?? []).some((l) => l.startsWith("listener"));
  return [
    "user root",
    "persistence false",
    "max_inflight_messages 1000",
    "max_queued_messages 2000000",
    "max_queued_bytes 0",
    "log_dest stderr",
    "log_type error",
    "log_type warning",
    ...(hasListener ? [] : [`listener ${port} ${bind}`.trim(), "allow_anonymous true"]),
    ...(options.config ?? []).map((l) => l.replaceAll("{port}", String(port)).replaceAll("{dir}", dir)),
  ];
}

export async function startBroker(options: BrokerOptions = {}): Promise<Broker> {
  if (await useContainers()) return startBrokerContainer(options);
  const dir = mkdtempSync(join(tmpdir(), "tera-cdc-mqtt-"));
  const port = options.port ?? (await freePort());
  for (const [name, content] of Object.entries(options.files ?? {})) writeFileSync(join(dir, name), content);
  const lines = configLines(options, port, dir, "127.0.0.1");
  writeFileSync(join(dir, "mosquitto.conf"), `${lines.join("\n")}\n`);
  let child: ChildProcess | null = null;
  let log = "";
  const start = async () => {
    child = spawnTracked(MOSQUITTO, ["-c", join(dir, "mosquitto.conf")], { stdio: ["ignore", "pipe", "pipe"] });
    child.stderr?.on("data", (d: Buffer) => {
      log = (log + d.toString()).slice(-10_000);
    });
    await waitFor(`mosquitto on port ${port}`, () => {
      if (child?.exitCode !== null) throw new Error(`mosquitto exited: ${log}`);
      return new Promise<boolean>((resolve) => {
        const socket = tcpConnect(port, "127.0.0.1");
        socket.once("connect", () => {
          socket.destroy();
          resolve(true);
        });
        socket.once("error", () => resolve(false));
      });
    });
  };
  const stop = async () => {
    const running = child;
    child = null;
    if (!running || running.exitCode !== null) return;
    running.kill("SIGTERM");
    await exited(running);
  };
  await start();
  return {
    url: `${options.scheme ?? "mqtt"}://127.0.0.1:${port}`,
    port,
    dir,
    stop,
    start,
    async close() {
      await stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function startBrokerContainer(options: BrokerOptions): Promise<Broker> {
  const dir = "/mosquitto/config";
  const lines = configLines(options, 1883, dir, "").map((l) => l.replace(/^(listener \d+) 127\.0\.0\.1$/, "$1"));
  const container = await startServerContainer({
    image: "eclipse-mosquitto:2",
    port: 1883,
    files: [
      { content: `${lines.join("\n")}\n`, target: `${dir}/mosquitto.conf` },
      ...Object.entries(options.files ?? {}).map(([name, content]) => ({ content, target: `${dir}/${name}` })),
    ],
    serve: `mosquitto -c ${dir}/mosquitto.conf`,
    stop: "pkill mosquitto",
  });
  return {
    url: `${options.scheme ?? "mqtt"}://${container.host}:${container.port}`,
    port: container.port,
    dir,
    stop: () => container.stopServer(),
    start: () => container.startServer(),
    close: () => container.close(),
  };
}

/** An in-process aedes broker (MQTT 3.1.1 only, like the embedded fallback) on a free loopback port. */
export async function startAedes(): Promise<{ readonly url: string; close(): Promise<void> }> {
  const { Aedes } = await import("aedes");
  const aedes = await Aedes.createBroker();
  const server = createServer(aedes.handle);
  const port = await freePort();
  await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", resolve));
  return {
    url: `mqtt://127.0.0.1:${port}`,
    async close() {
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await new Promise<void>((resolve) => aedes.close(() => resolve()));
    },
  };
}
