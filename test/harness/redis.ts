import type { ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import { connect as tcpConnect, createServer, type Server, type Socket } from "node:net";
import { createClient } from "redis";
import { decodeTeraEvent, unpackAny } from "../../src/messages/index.js";
import { freePort, waitFor } from "./ports.js";
import { exited, type RestartableServer, spawnTracked } from "./processes.js";

const REDIS_SERVER = process.env.TERA_CDC_REDIS_SERVER ?? "redis-server";

export type RedisServer = RestartableServer;

/** Certificate files of a redis-server that speaks TLS only. */
export interface RedisTlsFiles {
  readonly cert: string;
  readonly key: string;
  readonly ca: string;
}

/**
 * A throwaway redis-server on a free loopback port, nothing saved to disk. With `tls`, it listens
 * for TLS only (rediss://) and does not ask clients for certificates.
 */
export async function startRedis(options: { tls?: RedisTlsFiles } = {}): Promise<RedisServer> {
  const port = await freePort();
  let child: ChildProcess | null = null;
  let log = "";
  const listen = options.tls
    ? ["--port", "0", "--tls-port", String(port), "--tls-cert-file", options.tls.cert, "--tls-key-file", options.tls.key, "--tls-ca-cert-file", options.tls.ca, "--tls-auth-clients", "no"]
    : ["--port", String(port)];
  const start = async () => {
    child = spawnTracked(REDIS_SERVER, [...listen, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"], { stdio: ["ignore", "pipe", "pipe"] });
    child.stdout?.on("data", (d: Buffer) => (log = (log + d.toString()).slice(-10_000)));
    await waitFor(`redis-server on port ${port}`, () => {
      if (child?.exitCode !== null) throw new Error(`redis-server exited: ${log}`);
      return canConnect(port);
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
  return { url: `${options.tls ? "rediss" : "redis"}://127.0.0.1:${port}`, port, stop, start, close: stop };
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = tcpConnect(port, "127.0.0.1");
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}

/**
 * A TCP relay to Redis that can cut tera-cdc off (closing its connections and refusing new ones)
 * while subscribers talk to Redis directly: pub/sub reaches only connected subscribers, so a test
 * that restarts Redis lets its subscriber back in before tera-cdc.
 */
export interface RedisGate {
  readonly url: string;
  /** Bytes relayed from clients to Redis so far (commands sent, answered or not). */
  bytesToRedis(): number;
  close(): Promise<void>;
  open(): Promise<void>;
  shutdown(): Promise<void>;
}

export async function startGate(target: number): Promise<RedisGate> {
  const port = await freePort();
  const sockets = new Set<Socket>();
  let closed = false;
  let relayed = 0;
  const server: Server = createServer((client) => {
    if (closed) {
      client.destroy();
      return;
    }
    const upstream = tcpConnect(target, "127.0.0.1");
    sockets.add(client).add(upstream);
    const end = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on("error", end).on("close", end);
    upstream.on("error", end).on("close", end);
    client.on("data", (chunk: Buffer) => (relayed += chunk.length));
    client.pipe(upstream);
    upstream.pipe(client);
  });
  const listen = () => new Promise<void>((resolve) => server.listen(port, "127.0.0.1", resolve));
  await listen();
  // Closed: not listening (connection refused, as from a Redis that is down) and every relayed
  // connection cut.
  const cut = async () => {
    if (closed) return;
    closed = true;
    const stopped = new Promise<void>((resolve) => server.close(() => resolve()));
    for (const socket of sockets) socket.destroy();
    sockets.clear();
    await stopped;
  };
  return {
    url: `redis://127.0.0.1:${port}`,
    bytesToRedis: () => relayed,
    close: cut,
    async open() {
      if (!closed) return;
      closed = false;
      await listen();
    },
    shutdown: cut,
  };
}

/** One DatabaseEvent as a Redis subscriber sees it. */
export interface RedisEvent {
  readonly channel: string;
  readonly headerTopic: string;
  readonly type: number;
  readonly model: string;
  readonly objectText: string;
  readonly object: Record<string, unknown>;
}

export interface RedisSubscriber {
  readonly events: RedisEvent[];
  readonly payloads: Buffer[];
  /** Resolves once subscribed (again, after a reconnect). */
  subscribed(): Promise<void>;
  waitForCount(count: number, timeoutMs?: number): Promise<RedisEvent[]>;
  close(): Promise<void>;
}

/** PSUBSCRIBE on `pattern` as OpenTera's services do, decoding each payload as a TeraEvent. */
export async function startRedisSubscriber(url: string, pattern = "module.TeraServer.DatabaseModule.events.*", options: { ca?: string } = {}): Promise<RedisSubscriber> {
  const tls = options.ca ? { tls: true as const, ca: readFileSync(options.ca) } : {};
  const client = createClient({ url, socket: { reconnectStrategy: () => 100, ...tls } });
  client.on("error", () => {});
  let ready = false;
  client.on("ready", () => (ready = true));
  client.on("end", () => (ready = false));
  client.on("reconnecting", () => (ready = false));
  const events: RedisEvent[] = [];
  const payloads: Buffer[] = [];
  await client.connect();
  await client.pSubscribe(
    pattern,
    (payload: Buffer, channel: Buffer) => {
      payloads.push(payload);
      const decoded = decodeTeraEvent(payload);
      if (!decoded.ok) throw new Error(`undecodable payload on ${channel}: ${decoded.error.message}`);
      for (const any of decoded.message.events) {
        const unpacked = unpackAny(any);
        if (unpacked.type !== "DatabaseEvent") throw new Error(`unexpected ${unpacked.type} on ${channel}`);
        const db = unpacked.message;
        events.push({
          channel: channel.toString(),
          headerTopic: decoded.message.header?.topic ?? "",
          type: db.type,
          model: db.objectType,
          objectText: db.objectValue,
          object: JSON.parse(db.objectValue) as Record<string, unknown>,
        });
      }
    },
    true,
  );
  return {
    events,
    payloads,
    async subscribed() {
      // node-redis resubscribes on reconnect before it reports ready again; PUBSUB NUMPAT on a
      // second connection tells when the pattern is live on the server.
      const probe = createClient({ url, socket: tls });
      probe.on("error", () => {});
      try {
        await waitFor("the subscriber to be subscribed", async () => {
          if (!ready) return false;
          if (!probe.isOpen) await probe.connect();
          return Number(await probe.sendCommand(["PUBSUB", "NUMPAT"])) > 0;
        }, 30_000, 50);
      } finally {
        if (probe.isOpen) probe.destroy();
      }
    },
    async waitForCount(count, timeoutMs = 60_000) {
      await waitFor(`${count} events on Redis (have ${events.length})`, () => events.length >= count, timeoutMs, 20);
      return events;
    },
    async close() {
      client.destroy();
    },
  };
}
