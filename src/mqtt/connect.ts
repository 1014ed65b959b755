/**
 * The one MQTT adapter: every part of tera-cdc that talks to a broker (the sink, the client
 * library, RPC, the gateway, tail, log publishing, the snapshot command, audit) connects through
 * here. Credentials and TLS files, the protocol choice (MQTT 5, or 3.1.1 when the broker does not
 * speak 5), timeouts, the reconnect policy and the failover between the brokers of a list live in
 * this file only; mqtt.js internals live in ./internals.ts only.
 *
 * A broker URL may be a comma-separated list of URLs, the nodes of one broker cluster
 * (`mqtt://a:1883,mqtt://b:1883`). A connection starts at the first broker that answers, in the
 * order given, and after a lost connection moves on round-robin to the next (mqtt.js's documented
 * `servers` option): it does not go back to the first while the one it has works, as any node of a
 * cluster serves every topic. What was unacknowledged is sent again to the next broker (mqtt.js's
 * store of outgoing QoS 1/2 packets is kept across reconnects).
 */
import { readFileSync } from "node:fs";
import mqtt, { type IClientOptions, type MqttClient } from "mqtt";
import { FatalError, TransientError } from "../errors.js";
import { redactUrl, splitUrlList } from "../redact.js";
import { checkMqttInternals, serverNameFollowsHost } from "./internals.js";

export type ProtocolVersion = 4 | 5;

/** Credentials and TLS material, read once. */
export interface BrokerCredentials {
  readonly username?: string;
  readonly password?: string;
  readonly ca?: Buffer;
  readonly cert?: Buffer;
  readonly key?: Buffer;
}

/** The same, as settings name them (paths of PEM files). */
export interface BrokerCredentialFiles {
  readonly username?: string;
  readonly password?: string;
  readonly caFile?: string;
  readonly certFile?: string;
  readonly keyFile?: string;
}

/** Reads the TLS files of the settings (validated at start-up): the one place they are read. */
export function readCredentials(files: BrokerCredentialFiles): BrokerCredentials {
  return {
    username: files.username,
    password: files.password,
    ca: files.caFile ? readFileSync(files.caFile) : undefined,
    cert: files.certFile ? readFileSync(files.certFile) : undefined,
    key: files.keyFile ? readFileSync(files.keyFile) : undefined,
  };
}

/** The broker settings a command may take (each command takes some of them). */
export interface MqttCredentialSettings {
  readonly "mqtt-username"?: string | undefined;
  readonly "mqtt-password"?: string | undefined;
  readonly "mqtt-ca"?: string | undefined;
  readonly "mqtt-cert"?: string | undefined;
  readonly "mqtt-key"?: string | undefined;
}

/** Reads the `mqtt-username`, `mqtt-password`, `mqtt-ca`, `mqtt-cert` and `mqtt-key` settings (files already validated). */
export function mqttCredentials(values: MqttCredentialSettings): BrokerCredentials {
  return readCredentials({
    username: values["mqtt-username"],
    password: values["mqtt-password"],
    caFile: values["mqtt-ca"],
    certFile: values["mqtt-cert"],
    keyFile: values["mqtt-key"],
  });
}

/** Reconnect policy of long-lived connections: the first retry after 500 ms, doubling up to 30 s. */
export const RECONNECT_FIRST_DELAY_MS = 500;
export const RECONNECT_MAX_DELAY_MS = 30_000;
/** A steady period for connections that only listen (RPC, gateway, logs): mqtt.js retries every second. */
export const RECONNECT_STEADY_MS = 1000;
export const CONNECT_TIMEOUT_MS = 10_000;

export function nextReconnectDelay(previousMs: number): number {
  return Math.min(previousMs * 2, RECONNECT_MAX_DELAY_MS);
}

/** What a failed connection attempt means. */
export type ConnectFailure = "unsupported-protocol" | "refused-credentials" | "unreachable";

/**
 * Tells a broker that does not speak the protocol version (CONNACK 132 in MQTT 5, return code 1
 * in 3.1.1) from one that refused the credentials (134, 135, 140; 4, 5) from anything else. A
 * refusal of the credentials is never taken for "maybe 3.1.1".
 */
export function classifyConnectError(error: Error & { code?: unknown }): ConnectFailure {
  const code = typeof error.code === "number" ? error.code : undefined;
  if (code === 134 || code === 135 || code === 140 || code === 4 || code === 5) return "refused-credentials";
  if (code === 132 || code === 1 || /unsupported protocol|unacceptable protocol version/i.test(error.message)) return "unsupported-protocol";
  return "unreachable";
}

/** The broker refused the credentials (user name, password, client certificate). */
export class BrokerAuthError extends FatalError {
  override readonly name: string = "BrokerAuthError";
}

/**
 * The mqtt.js options every connection shares: protocol, credentials, timeout, keepalive, no
 * per-packet debug logging (mqtt.js calls its logger several times per publish: ~4% of the hot
 * path even disabled), plus the caller's own (client id, session, reconnect period).
 */
export function clientOptions(credentials: BrokerCredentials, protocolVersion: ProtocolVersion, own: IClientOptions = {}): IClientOptions {
  checkMqttInternals();
  const given: IClientOptions = {};
  for (const name of ["username", "password", "ca", "cert", "key"] as const) {
    if (credentials[name] !== undefined) Object.assign(given, { [name]: credentials[name] });
  }
  return {
    connectTimeout: CONNECT_TIMEOUT_MS,
    keepalive: 30,
    log: () => {},
    ...given,
    ...own,
    protocolVersion,
    properties: protocolVersion === 5 ? own.properties : undefined,
  };
}

/** The brokers of a broker URL: one, or each of a comma-separated list, in the order given. */
export function brokerUrls(url: string): string[] {
  return splitUrlList(url);
}

const DEFAULT_PORTS: Readonly<Record<string, number>> = { mqtt: 1883, tcp: 1883, mqtts: 8883, ssl: 8883, ws: 80, wss: 443 };

/**
 * The one call of mqtt.connect. With a list of brokers, the client starts at the one at `startAt`
 * and moves on round-robin at each reconnection (mqtt.js `servers`); TLS then checks each broker's
 * certificate against that broker's own host name (serverNameFollowsHost).
 */
function connectClient(url: string, options: IClientOptions, startAt = 0): MqttClient {
  const urls = brokerUrls(url);
  if (urls.length === 1) return mqtt.connect(url, options);
  const order = [...urls.slice(startAt % urls.length), ...urls.slice(0, startAt % urls.length)];
  const servers = order.map((one) => {
    const parsed = new URL(one);
    const protocol = parsed.protocol.replace(/:$/, "");
    return { host: parsed.hostname.replace(/^\[(.*)\]$/, "$1"), port: parsed.port ? Number(parsed.port) : DEFAULT_PORTS[protocol], protocol: protocol as "mqtt" };
  });
  const client = mqtt.connect(order[0]!, { ...options, servers });
  serverNameFollowsHost(client);
  return client;
}

/**
 * A long-lived client at a known protocol, returned before it connects (the caller attaches its
 * handlers first, e.g. before a persistent session's queued messages arrive).
 */
export function openClient(url: string, credentials: BrokerCredentials, protocolVersion: ProtocolVersion, own: IClientOptions = {}): MqttClient {
  return connectClient(url, clientOptions(credentials, protocolVersion, own));
}

/**
 * One connection attempt, to the broker at `startAt` of the list: connected, or why not (the
 * client is then closed). `track` is told the client while the attempt lasts (null after), so a
 * stop can cut it short.
 */
export function attemptConnect(
  url: string,
  options: IClientOptions,
  track: (attempt: MqttClient | null) => void = () => {},
  startAt = 0,
): Promise<{ client: MqttClient; connack: mqtt.IConnackPacket } | { failure: ConnectFailure; error: Error }> {
  const client = connectClient(url, options, startAt);
  track(client);
  return new Promise((resolve) => {
    // Only our own listeners come off: mqtt.js keeps its state (connected, reconnect, queued
    // packets) in listeners of its own on the same events.
    const detach = () => {
      track(null);
      client.off("connect", onConnect);
      client.off("error", onError);
      client.off("close", onClose);
    };
    const fail = (failure: ConnectFailure, error: Error) => {
      detach();
      client.on("error", () => {});
      client.end(true);
      resolve({ failure, error });
    };
    const onConnect = (connack: mqtt.IConnackPacket) => {
      detach();
      resolve({ client, connack });
    };
    const onError = (error: Error & { code?: unknown }) => fail(classifyConnectError(error), error);
    // Closed without a CONNACK: at version 5 a 3.1.1-only broker may just drop the connection.
    const onClose = () => fail(options.protocolVersion === 5 ? "unsupported-protocol" : "unreachable", new Error("connection closed by the broker"));
    client.once("connect", onConnect);
    client.once("error", onError);
    client.once("close", onClose);
  });
}

/**
 * Connects once, to the first broker of the list that answers, making the protocol choice: MQTT 5,
 * unless `protocol` is given or the broker does not speak it (then 3.1.1). Rejects with a
 * BrokerAuthError when a broker refused the credentials, a TransientError when none could be
 * reached (the URL redacted).
 */
export async function connectBroker(
  url: string,
  credentials: BrokerCredentials,
  own: IClientOptions = {},
  protocol?: ProtocolVersion,
): Promise<{ client: MqttClient; protocolVersion: ProtocolVersion; connack: mqtt.IConnackPacket }> {
  const versions: ProtocolVersion[] = protocol ? [protocol] : [5, 4];
  let last: { failure: ConnectFailure; error: Error } | null = null;
  for (let startAt = 0; startAt < brokerUrls(url).length; startAt++) {
    for (const protocolVersion of versions) {
      const outcome = await attemptConnect(url, clientOptions(credentials, protocolVersion, own), undefined, startAt);
      if ("client" in outcome) return { client: outcome.client, protocolVersion, connack: outcome.connack };
      last = outcome;
      if (outcome.failure !== "unsupported-protocol") break;
    }
    if (last!.failure === "refused-credentials") break;
  }
  const where = redactUrl(url);
  if (last!.failure === "refused-credentials") throw new BrokerAuthError(`the MQTT broker ${where} refused the credentials: ${last!.error.message}`, { cause: last!.error });
  throw new TransientError(`cannot connect to the MQTT broker ${where}: ${last!.error.message}`, { cause: last!.error });
}
