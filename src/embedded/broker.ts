import { type ChildProcess, spawn } from "node:child_process";
import { pbkdf2Sync, randomBytes, timingSafeEqual } from "node:crypto";
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, writeFileSync } from "node:fs";
import { connect, createServer, type Server } from "node:net";
import { join } from "node:path";
import { optionalPackage } from "../optional.js";
import type { Logger } from "../ops/log.js";
import type { BrokerIdentity } from "./secrets.js";
import { isProcessAlive } from "./state.js";

/** Mosquitto as Debian installs it; TERA_CDC_MOSQUITTO names another binary ("" or "none": never). */
export const MOSQUITTO_BINARY = process.env.TERA_CDC_MOSQUITTO ?? "/usr/sbin/mosquitto";

export type EmbeddedBrokerKind = "mosquitto" | "aedes";

export interface EmbeddedBroker {
  readonly port: number;
  readonly url: string;
  readonly kind: EmbeddedBrokerKind;
  /** Highest MQTT version it speaks: 5 (Mosquitto) or 4 (3.1.1, aedes). */
  readonly protocolVersion: 4 | 5;
  /** Process id of a broker running in its own process (Mosquitto), to stop it if left behind. */
  readonly pid?: number;
  stop(): Promise<void>;
}

export interface EmbeddedBrokerOptions {
  readonly port: number;
  readonly dataDir: string;
  readonly publisher: BrokerIdentity;
  readonly local: BrokerIdentity;
  readonly logger: Logger;
}

/** Whether the embedded default can run Mosquitto (MQTT 5) here. */
export function mosquittoAvailable(): boolean {
  return MOSQUITTO_BINARY !== "" && MOSQUITTO_BINARY !== "none" && existsSync(MOSQUITTO_BINARY);
}

/** RPC requests (module/<name>/rpc): the only topics the local commands' identity may publish on. */
const RPC_TOPIC = /^module\/[^/#+]+\/rpc$/;

/**
 * What each identity may do, the same for both brokers: the publisher (tera-cdc's `run`) anything;
 * the local commands read anything and publish RPC requests only, so nobody but tera-cdc can put
 * an event on an event topic. Anonymous clients are refused.
 */
export function mayPublish(username: string | undefined, topic: string, identities: { publisher: BrokerIdentity; local: BrokerIdentity }): boolean {
  if (username === identities.publisher.username) return true;
  if (username === identities.local.username) return RPC_TOPIC.test(topic);
  return false;
}

/** Mosquitto 2's password file line: PBKDF2-SHA512, 101 iterations, 12-byte salt (`$7$`). */
export function mosquittoPasswordLine(identity: BrokerIdentity): string {
  const salt = randomBytes(12);
  const hash = pbkdf2Sync(identity.password, salt, 101, 64, "sha512");
  return `${identity.username}:$7$101$${salt.toString("base64")}$${hash.toString("base64")}`;
}

/**
 * The embedded broker on 127.0.0.1:`port`: a private Mosquitto (MQTT 5) when its binary is
 * installed, else aedes inside this process (MQTT 3.1.1 only: events then carry no user
 * properties). Either way only the generated identities may connect.
 */
export async function startEmbeddedBroker(kind: EmbeddedBrokerKind, options: EmbeddedBrokerOptions): Promise<EmbeddedBroker> {
  return kind === "mosquitto" ? startMosquitto(options) : startAedes(options);
}

function equalSecret(given: Buffer | string | undefined, expected: string): boolean {
  if (given === undefined) return false;
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

async function startAedes(options: EmbeddedBrokerOptions): Promise<EmbeddedBroker> {
  const { port } = options;
  const identities = { publisher: options.publisher, local: options.local };
  const users = new Map<string, string>();
  // An optional dependency (package.json): loaded only when Mosquitto is not installed.
  const { Aedes } = await optionalPackage<typeof import("aedes")>("aedes", "the embedded MQTT broker (when Mosquitto is not installed)");
  const broker = await Aedes.createBroker({
    authenticate: (client, username, password, done) => {
      const known = [identities.publisher, identities.local].find((i) => i.username === username);
      const ok = known !== undefined && equalSecret(password, known.password);
      if (ok) users.set(client.id, username!);
      // Return code 4: bad user name or password.
      done(ok ? null : Object.assign(new Error("bad user name or password"), { returnCode: 4 }), ok);
    },
    authorizePublish: (client, packet, done) => {
      // Messages of the broker itself (client null) are not the clients' to make.
      if (client === null || mayPublish(users.get(client.id), packet.topic, identities)) return done(null);
      done(new Error(`not allowed to publish on ${packet.topic}`));
    },
  });
  broker.on("clientDisconnect", (client) => users.delete(client.id));
  const server: Server = createServer(broker.handle);
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen({ port, host: "127.0.0.1", exclusive: true }, () => {
      server.off("error", reject);
      resolve();
    });
  });
  return {
    port,
    url: `mqtt://127.0.0.1:${port}`,
    kind: "aedes",
    protocolVersion: 4,
    async stop() {
      // Clients are disconnected by closing the broker; the server then stops accepting.
      await new Promise<void>((resolve) => broker.close(() => resolve()));
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

const MOSQUITTO_START_MS = 20_000;

function brokerDir(dataDir: string): string {
  return join(dataDir, "mosquitto");
}

/** A Mosquitto left running on this data folder by a tera-cdc that was killed is stopped. */
export async function stopOrphanedMosquitto(dataDir: string, pid: number | undefined, logger: Logger): Promise<void> {
  if (!pid || !isProcessAlive(pid)) return;
  try {
    if (!readFileSync(`/proc/${pid}/cmdline`, "utf8").includes(brokerDir(dataDir))) return;
  } catch {
    return;
  }
  logger.warn({ pid }, "stopping the embedded Mosquitto left running by an earlier tera-cdc");
  process.kill(pid, "SIGTERM");
  const deadline = Date.now() + 10_000;
  while (isProcessAlive(pid) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 100));
}

function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, "127.0.0.1");
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}

async function startMosquitto(options: EmbeddedBrokerOptions): Promise<EmbeddedBroker> {
  const { port, logger } = options;
  const dir = brokerDir(options.dataDir);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const passwords = join(dir, "passwords");
  const acl = join(dir, "acl");
  const config = join(dir, "mosquitto.conf");
  writeFileSync(passwords, `${[options.publisher, options.local].map(mosquittoPasswordLine).join("\n")}\n`, { mode: 0o600 });
  writeFileSync(
    acl,
    [
      `user ${options.publisher.username}`,
      "topic readwrite #",
      `user ${options.local.username}`,
      "topic read #",
      "topic write module/+/rpc",
      "",
    ].join("\n"),
    { mode: 0o600 },
  );
  writeFileSync(
    config,
    [
      // As root, Mosquitto would switch to the mosquitto user, who cannot read these 0600 files.
      ...(process.getuid?.() === 0 ? ["user root"] : []),
      `listener ${port} 127.0.0.1`,
      "allow_anonymous false",
      `password_file ${passwords}`,
      `acl_file ${acl}`,
      "persistence false",
      // The sink keeps up to --max-in-flight QoS 1 messages unacknowledged (default 1000); the
      // defaults (20 in flight, 1000 queued) would drop messages to a slow subscriber.
      "max_inflight_messages 1000",
      "max_queued_messages 100000",
      "log_dest stderr",
      "log_type error",
      "log_type warning",
      "",
    ].join("\n"),
    { mode: 0o600 },
  );
  const logFile = join(options.dataDir, "mosquitto.log");
  const logFd = openSync(logFile, "a");
  // Its own process group: Ctrl-C in a terminal reaches tera-cdc only, which stops it after its own clean stop.
  const child: ChildProcess = spawn(MOSQUITTO_BINARY, ["-c", config], { detached: true, stdio: ["ignore", logFd, logFd] });
  closeSync(logFd);
  const stopOnExit = () => {
    if (child.exitCode === null && child.pid) process.kill(child.pid, "SIGTERM");
  };
  process.on("exit", stopOnExit);
  const deadline = Date.now() + MOSQUITTO_START_MS;
  let spawnError: Error | undefined;
  child.once("error", (error) => (spawnError = error));
  while (!(await listening(port))) {
    if (spawnError || child.exitCode !== null || Date.now() > deadline) {
      stopOnExit();
      process.off("exit", stopOnExit);
      const log = existsSync(logFile) ? readFileSync(logFile, "utf8").trim().split("\n").slice(-2).join(" | ") : "";
      throw new Error(`embedded Mosquitto did not start on port ${port}: ${spawnError?.message ?? (log || `exit code ${child.exitCode}`)} (full log: ${logFile})`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  logger.debug({ pid: child.pid, config }, "embedded Mosquitto listening");
  return {
    port,
    url: `mqtt://127.0.0.1:${port}`,
    kind: "mosquitto",
    protocolVersion: 5,
    pid: child.pid,
    async stop() {
      process.off("exit", stopOnExit);
      if (child.exitCode !== null || child.signalCode !== null || !child.pid) return;
      const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
      process.kill(child.pid, "SIGTERM");
      const timer = setTimeout(() => child.pid && child.exitCode === null && process.kill(child.pid, "SIGKILL"), 10_000);
      await exited;
      clearTimeout(timer);
    },
  };
}
