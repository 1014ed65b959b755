import { SignJWT } from "jose";
import { WebSocket } from "ws";
import YAML from "yaml";
import { createVerifier, SUBPROTOCOL } from "../../src/gateway/auth.js";
import { parseRules } from "../../src/gateway/rules.js";
import type { GatewayOptions } from "../../src/gateway/server.js";
import { createLogger } from "../../src/ops/log.js";
import { DatabaseEvent_EventType, decodeTeraMessage, unpackAny } from "../../src/messages/index.js";
import { waitFor } from "../harness/ports.js";

export const SECRET = "test-secret-of-the-gateway-0123456789abcdef";

export const RULES_YAML = `models:
  device:
    rows:
      - { column: id_site, in-claim: sites }
`;

/** A gateway's options for tests: on a free port, the test secret and RULES_YAML, warnings logged. */
export function gatewayOptions(mqttUrl: string, overrides: Partial<GatewayOptions> = {}): GatewayOptions {
  return {
    mqttUrl,
    host: "127.0.0.1",
    port: 0,
    verifier: createVerifier({ secret: SECRET }),
    rules: parseRules(YAML.parse(RULES_YAML)),
    models: ["device"],
    ringEvents: 10_000,
    ringBytes: 64 * 1024 * 1024,
    maxClientBufferBytes: 4 * 1024 * 1024,
    pingIntervalMs: 10_000,
    maxKeysPerClient: 100_000,
    sessionTtlMs: 60_000,
    maxSessions: 100,
    logger: createLogger("warn"),
    ...overrides,
  };
}

export function token(claims: Record<string, unknown>, secret = SECRET, expiresIn = "1h"): Promise<string> {
  return new SignJWT(claims).setProtectedHeader({ alg: "HS256" }).setIssuedAt().setExpirationTime(expiresIn).sign(new TextEncoder().encode(secret));
}

/** One forwarded row change as a client decodes it: the text frame's meta and the binary frame's DatabaseEvent. */
export interface ClientEvent {
  readonly lsn: string;
  readonly seq: number;
  readonly op: string;
  readonly leftView: boolean;
  /** One of the current rows after a subscribe with "rows": true, not a change. */
  readonly initial: boolean;
  readonly type: DatabaseEvent_EventType;
  readonly object: Record<string, unknown>;
  readonly headerTopic: string;
}

export interface TestClient {
  readonly socket: WebSocket;
  readonly events: ClientEvent[];
  readonly controls: ({ type: string } & Record<string, unknown>)[];
  control(type: string, timeoutMs?: number): Promise<{ type: string } & Record<string, unknown>>;
  waitForEvents(count: number, timeoutMs?: number): Promise<ClientEvent[]>;
  closed(): Promise<number>;
  close(): void;
}

/** A WebSocket client that authenticates with a token and decodes every frame as a browser would. */
export async function connectClient(port: number, jwt: string): Promise<TestClient> {
  const socket = new WebSocket(`ws://127.0.0.1:${port}/ws`, [SUBPROTOCOL, `bearer.${jwt}`]);
  const events: ClientEvent[] = [];
  const controls: ({ type: string } & Record<string, unknown>)[] = [];
  let meta: Record<string, unknown> | null = null;
  let closeCode: number | null = null;
  socket.on("close", (code) => (closeCode = code));
  socket.on("message", (data, isBinary) => {
    if (!isBinary) {
      const frame = JSON.parse(data.toString()) as { type: string } & Record<string, unknown>;
      if (frame.type === "event") meta = frame;
      else controls.push(frame);
      return;
    }
    if (!meta) throw new Error("binary frame without its event meta frame before it");
    const message = decodeTeraMessage(new Uint8Array(data as Buffer));
    if (!message.ok) throw new Error(`undecodable TeraMessage: ${message.error.message}`);
    const outer = unpackAny(message.message.message!);
    if (outer.type !== "TeraEvent") throw new Error(`TeraMessage holds ${outer.type}`);
    if (outer.message.events.length !== 1) throw new Error(`TeraEvent holds ${outer.message.events.length} events`);
    const inner = unpackAny(outer.message.events[0]!);
    if (inner.type !== "DatabaseEvent") throw new Error(`TeraEvent holds ${inner.type}`);
    events.push({
      lsn: meta.lsn as string,
      seq: meta.seq as number,
      op: meta.op as string,
      leftView: meta.leftView === true,
      initial: meta.initial === true,
      type: inner.message.type,
      object: JSON.parse(inner.message.objectValue) as Record<string, unknown>,
      headerTopic: outer.message.header?.topic ?? "",
    });
    meta = null;
  });
  await new Promise<void>((resolve, reject) => {
    socket.once("open", () => resolve());
    socket.once("error", reject);
  });
  const client: TestClient = {
    socket,
    events,
    controls,
    control: (type, timeoutMs = 30_000) => waitFor(`a ${type} frame`, () => controls.find((c) => c.type === type), timeoutMs),
    waitForEvents: (count, timeoutMs = 30_000) => waitFor(`${count} events (have ${events.length})`, () => (events.length >= count ? events : undefined), timeoutMs),
    closed: () => waitFor("the socket to close", () => closeCode ?? undefined, 30_000),
    close: () => socket.close(),
  };
  await client.control("hello");
  return client;
}

export function subscribe(client: TestClient, models: string[], extra: Record<string, unknown> = {}): Promise<{ type: string } & Record<string, unknown>> {
  const before = client.controls.length;
  client.socket.send(JSON.stringify({ type: "subscribe", models, ...extra }));
  return waitFor("subscribed or error", () => client.controls.slice(before).find((c) => c.type === "subscribed" || c.type === "error"), 30_000);
}
