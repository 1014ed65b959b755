/**
 * Contract tests of the one MQTT adapter (src/mqtt) against real brokers: every mqtt.js internal
 * src/mqtt/internals.ts relies on does what it is used for on the pinned version, and the
 * protocol choice tells a 3.1.1-only broker from refused credentials.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Aedes } from "aedes";
import mqtt, { type MqttClient } from "mqtt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BrokerAuthError, connectBroker } from "../../src/mqtt/connect.js";
import { beforeReconnectScheduled, checkMqttInternals, publishQos1, sendPuback, setReconnectPeriod, writePublishesWith } from "../../src/mqtt/internals.js";
import { PublishEncoder } from "../../src/mqtt/publish-packet.js";
import { type Broker, startBroker } from "../harness/broker.js";
import { freePort, waitFor } from "../harness/ports.js";

/** The error a connection attempt ends with (a connection is a failure of the test). */
const refusal = (attempt: Promise<{ client: MqttClient }>): Promise<Error> =>
  attempt.then(
    ({ client }) => {
      client.end(true);
      throw new Error("connected, expected a refusal");
    },
    (error: Error) => error,
  );

let broker: Broker;
let guarded: Broker;
const clients: MqttClient[] = [];
const track = (client: MqttClient) => (clients.push(client), client);

function passwordFile(user: string, password: string): string {
  const dir = mkdtempSync(join(tmpdir(), "tera-cdc-passwd-"));
  try {
    execFileSync("mosquitto_passwd", ["-c", "-b", join(dir, "passwd"), user, password], { stdio: "pipe" });
    return readFileSync(join(dir, "passwd"), "utf8");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

beforeAll(async () => {
  [broker, guarded] = await Promise.all([
    startBroker(),
    startBroker({ files: { passwd: passwordFile("tera", "right-pw") }, config: ["allow_anonymous false", "password_file {dir}/passwd"] }),
  ]);
}, 60_000);

afterAll(async () => {
  for (const client of clients) client.end(true);
  await Promise.all([broker?.close(), guarded?.close()]);
});

describe("mqtt.js internals (src/mqtt/internals.ts) on the pinned version", () => {
  it("the start-up check finds them", () => {
    expect(() => checkMqttInternals()).not.toThrow();
  });

  it("sendPuback acknowledges a message whose handleMessage callback deferred it: the broker then sends the next (Receive Maximum 1)", async () => {
    const topic = `contract/puback/${Date.now()}`;
    const subscriber = track(await mqtt.connectAsync(broker.url, { protocolVersion: 5, clean: true, properties: { receiveMaximum: 1 } }));
    const received: { id: number; body: string }[] = [];
    subscriber.handleMessage = (packet, callback) => {
      received.push({ id: packet.messageId!, body: packet.payload.toString() });
      // An error: mqtt.js does not acknowledge (the client library acknowledges after handling).
      callback(new Error("later"));
    };
    await subscriber.subscribeAsync(topic, { qos: 1 });
    const publisher = track(await mqtt.connectAsync(broker.url, { protocolVersion: 5 }));
    await publisher.publishAsync(topic, "one", { qos: 1 });
    await publisher.publishAsync(topic, "two", { qos: 1 });
    await waitFor("the first message", () => received.length === 1, 10_000);
    // Without a PUBACK the broker may not send the second (one unacknowledged at most).
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(received.map((r) => r.body)).toEqual(["one"]);
    sendPuback(subscriber, received[0]!.id);
    await waitFor("the second message after the PUBACK", () => received.length === 2, 10_000);
    expect(received[1]!.body).toBe("two");
  });

  it("writePublishesWith: every PUBLISH reaches the socket as our bytes, in one write, and mqtt.js still numbers, stores and acknowledges it", async () => {
    const topic = `contract/publish-bytes/${Date.now()}`;
    const subscriber = track(await mqtt.connectAsync(broker.url, { protocolVersion: 5 }));
    const got: { payload: string; props: unknown; contentType: unknown }[] = [];
    subscriber.on("message", (_t, payload, packet) => got.push({ payload: payload.toString(), props: packet.properties?.userProperties, contentType: packet.properties?.contentType }));
    await subscriber.subscribeAsync(topic, { qos: 1 });
    const publisher = track(await mqtt.connectAsync(broker.url, { protocolVersion: 5 }));
    const encoder = new PublishEncoder();
    const encoded: { messageId: number | undefined; bytes: Buffer }[] = [];
    writePublishesWith(publisher, (packet, version) => {
      const chunks = encoder.encode(packet, version);
      if (chunks) encoded.push({ messageId: packet.messageId, bytes: Buffer.concat(chunks) });
      return chunks;
    });
    const writes: Buffer[] = [];
    const socketWrite = publisher.stream.write.bind(publisher.stream);
    publisher.stream.write = ((chunk: Buffer, ...rest: unknown[]) => (writes.push(Buffer.from(chunk)), (socketWrite as (...a: unknown[]) => boolean)(chunk, ...rest))) as typeof publisher.stream.write;
    const sent = Array.from({ length: 200 }, (_, i) => ({ payload: `message ${i} ${"é".repeat(i % 7)}`, props: { lsn: `0/${i >> 4}`, seq: String(i), table: "public.t" }, contentType: "application/x-protobuf" }));
    await Promise.all(sent.map((m) => publisher.publishAsync(topic, m.payload, { qos: 1, properties: { contentType: m.contentType, userProperties: m.props } })));
    await waitFor("all 200 messages", () => got.length === 200, 20_000);
    expect(got).toEqual(sent);
    // Each PUBLISH went out as the encoder's bytes, in one write, with a packet id of mqtt.js's.
    expect(encoded).toHaveLength(200);
    expect(new Set(encoded.map((e) => e.messageId)).size).toBe(200);
    for (const { bytes } of encoded) expect(writes.some((w) => w.equals(bytes))).toBe(true);
  });

  /** A QoS 1 subscriber collecting payloads on a fresh topic, and a publisher that reconnects every 100 ms, with an encoder. */
  async function subscriberAndPublisher(name: string) {
    const topic = `contract/${name}/${Date.now()}`;
    const subscriber = track(await mqtt.connectAsync(broker.url, { protocolVersion: 5 }));
    const got: string[] = [];
    subscriber.on("message", (_t, payload) => got.push(payload.toString()));
    await subscriber.subscribeAsync(topic, { qos: 1 });
    const publisher = track(await mqtt.connectAsync(broker.url, { protocolVersion: 5, reconnectPeriod: 100, clean: true }));
    return { topic, got, publisher, encoder: new PublishEncoder() };
  }

  it("writePublishesWith: a PUBLISH stored while the connection was lost goes out after the reconnect through it and arrives", async () => {
    const { topic, got, publisher, encoder } = await subscriberAndPublisher("publish-resend");
    const seen: { dup: boolean | undefined; messageId: number | undefined }[] = [];
    writePublishesWith(publisher, (packet, version) => (seen.push({ dup: packet.dup, messageId: packet.messageId }), encoder.encode(packet, version)));
    // The first attempt is lost: the socket is destroyed before it writes anything.
    publisher.stream.destroy();
    const acknowledged = publisher.publishAsync(topic, "again", { qos: 1, properties: { contentType: "application/x-protobuf", userProperties: { lsn: "0/1" } } });
    await acknowledged;
    await waitFor("the message", () => got.includes("again"), 20_000);
    // mqtt.js's outgoing store hands the stored packet to the same writer after the reconnect.
    expect(seen.length).toBeGreaterThan(0);
    expect(seen.at(-1)!.messageId).toBeTypeOf("number");
  }, 40_000);

  /** mqtt.js's outgoing store of unacknowledged packets (what a reconnect sends again). */
  const storedIds = (client: MqttClient) => [...(client as unknown as { outgoingStore: { _inflights: Map<number, unknown> } }).outgoingStore._inflights.keys()];

  it("publishQos1: each message arrives with its properties, is acknowledged once, only after the broker's PUBACK, and leaves mqtt.js's store and ids free", async () => {
    const topic = `contract/qos1/${Date.now()}`;
    const subscriber = track(await mqtt.connectAsync(broker.url, { protocolVersion: 5 }));
    const got: { payload: string; props: unknown; contentType: unknown; qos: number }[] = [];
    subscriber.on("message", (_t, payload, packet) => got.push({ payload: payload.toString(), props: packet.properties?.userProperties, contentType: packet.properties?.contentType, qos: packet.qos }));
    await subscriber.subscribeAsync(topic, { qos: 1 });
    const publisher = track(await mqtt.connectAsync(broker.url, { protocolVersion: 5 }));
    const encoder = new PublishEncoder();
    writePublishesWith(publisher, (packet, version) => encoder.encode(packet, version));
    const pubacks: number[] = [];
    publisher.on("packetreceive", (packet) => {
      if (packet.cmd === "puback") pubacks.push(packet.messageId!);
    });
    const sent = Array.from({ length: 300 }, (_, i) => ({ payload: `change ${i}`, props: { lsn: `0/${i >> 5}`, seq: String(i) }, contentType: "application/x-protobuf", qos: 1 }));
    const acknowledged: { index: number; pubacksBefore: number; error: Error | null | undefined }[] = [];
    for (const [index, m] of sent.entries()) {
      publishQos1(publisher, topic, Buffer.from(m.payload), { contentType: m.contentType, userProperties: m.props }, (error) => acknowledged.push({ index, pubacksBefore: pubacks.length, error }));
    }
    // Nothing is confirmed before the broker answered.
    expect(acknowledged).toEqual([]);
    expect(storedIds(publisher)).toHaveLength(300);
    await waitFor("300 acknowledgements", () => acknowledged.length === 300, 20_000);
    await waitFor("300 messages", () => got.length === 300, 20_000);
    expect(got).toEqual(sent);
    expect(acknowledged.map((a) => a.index)).toEqual(sent.map((_, i) => i));
    // The n-th confirmation came after at least n PUBACKs.
    for (const [n, a] of acknowledged.entries()) {
      expect(a.error ?? null).toBeNull();
      expect(a.pubacksBefore).toBeGreaterThanOrEqual(n + 1);
    }
    expect(storedIds(publisher)).toEqual([]);
    expect(Object.keys((publisher as unknown as { outgoing: object }).outgoing)).toEqual([]);
    // Every packet id was given back: mqtt.js's own publish still gets one.
    await publisher.publishAsync(topic, "after", { qos: 1 });
  });

  it("publishQos1: what the lost connection never carried is sent again from mqtt.js's store after the reconnect and confirmed then; while away, it goes through mqtt.js's publish and arrives too", async () => {
    const { topic, got, publisher, encoder } = await subscriberAndPublisher("qos1-resend");
    writePublishesWith(publisher, (packet, version) => encoder.encode(packet, version));
    const confirmed: string[] = [];
    const errors: Error[] = [];
    const publish = (body: string) => publishQos1(publisher, topic, Buffer.from(body), { contentType: "application/x-protobuf", userProperties: { body } }, (error) => (error ? errors.push(error) : confirmed.push(body)));
    const first = Array.from({ length: 100 }, (_, i) => `before ${i}`);
    for (const body of first) publish(body);
    // The writes of this tick are corked until the next: destroyed now, the socket carried none of them.
    publisher.stream.destroy();
    expect(storedIds(publisher)).toHaveLength(100);
    await waitFor("the connection to be seen lost", () => !publisher.connected, 10_000);
    const away = Array.from({ length: 20 }, (_, i) => `away ${i}`);
    for (const body of away) publish(body);
    await waitFor("every message confirmed", () => confirmed.length === 120, 30_000);
    await waitFor("every message delivered", () => first.concat(away).every((b) => got.includes(b)), 30_000);
    expect(errors).toEqual([]);
    expect(new Set(confirmed)).toEqual(new Set(first.concat(away)));
    expect(storedIds(publisher)).toEqual([]);
  }, 60_000);

  it("setReconnectPeriod from a beforeReconnectScheduled listener sets the delay of the very next attempt", async () => {
    const client = track(await mqtt.connectAsync(broker.url, { protocolVersion: 5, reconnectPeriod: 60_000 }));
    beforeReconnectScheduled(client, () => setReconnectPeriod(client, 200));
    const lostAt = Date.now();
    const reconnected = new Promise<number>((resolve) => client.once("connect", () => resolve(Date.now() - lostAt)));
    client.stream.destroy();
    // Had mqtt.js scheduled before the listener ran, the next attempt would come after 60 s.
    expect(await reconnected).toBeLessThan(30_000);
  }, 40_000);
});

describe("connectBroker: the protocol choice, made once", () => {
  it("MQTT 5 where the broker speaks it", async () => {
    const { client, protocolVersion } = await connectBroker(broker.url, {}, { reconnectPeriod: 0 });
    track(client);
    expect(protocolVersion).toBe(5);
  });

  it("3.1.1 on a broker that speaks only 3.1.1 (aedes)", async () => {
    const aedes = await Aedes.createBroker();
    const server: Server = createServer(aedes.handle);
    const port = await freePort();
    await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", resolve));
    try {
      const { client, protocolVersion } = await connectBroker(`mqtt://127.0.0.1:${port}`, {}, { reconnectPeriod: 0 });
      track(client);
      expect(protocolVersion).toBe(4);
      client.end(true);
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await new Promise<void>((resolve) => aedes.close(() => resolve()));
    }
  });

  it("refused credentials are reported as such, at MQTT 5, never retried as 3.1.1", async () => {
    const error = await refusal(connectBroker(guarded.url, { username: "tera", password: "wrong-pw" }, { reconnectPeriod: 0 }));
    expect(error).toBeInstanceOf(BrokerAuthError);
    expect(error.message).toMatch(/refused the credentials/);
    expect(error.message).not.toContain("wrong-pw");
    // CONNACK reason 134/135 is MQTT 5's; a 3.1.1 retry would end with return code 4 or 5.
    expect((error.cause as { code?: number }).code).toBeGreaterThanOrEqual(128);
    const { client, protocolVersion } = await connectBroker(guarded.url, { username: "tera", password: "right-pw" }, { reconnectPeriod: 0 });
    track(client);
    expect(protocolVersion).toBe(5);
  });

  it("an unreachable broker is a TransientError naming the URL without its password", async () => {
    const port = await freePort();
    const error = await refusal(connectBroker(`mqtt://u:secret-pw@127.0.0.1:${port}`, {}, { reconnectPeriod: 0 }));
    expect(error.name).toBe("TransientError");
    expect(error.message).toMatch(/^cannot connect to the MQTT broker mqtt:\/\/u:redacted@127\.0\.0\.1/);
    expect(error.message).not.toContain("secret-pw");
  });
});

describe("a list of brokers (issue 18: the nodes of one cluster)", () => {
  it("connectBroker starts at the first broker of the list that answers, and reconnects to the next one round-robin", async () => {
    const down = await freePort();
    const { client } = await connectBroker(`mqtt://127.0.0.1:${down},${broker.url}`, {}, { reconnectPeriod: 100 });
    track(client);
    expect((client.stream as unknown as { remotePort: number }).remotePort).toBe(broker.port);
    // Round-robin from there: the next broker after a lost connection is the first of the list (down), then this one again.
    client.stream.destroy();
    await waitFor("the reconnection to come round to the broker again", () => client.connected && (client.stream as unknown as { remotePort: number }).remotePort === broker.port, 20_000);
  });

  it("none of the list reachable: a TransientError naming every broker without its password", async () => {
    const [p1, p2] = [await freePort(), await freePort()];
    const error = await refusal(connectBroker(`mqtt://u:pw-one@127.0.0.1:${p1},mqtt://u:pw-one@127.0.0.1:${p2}`, {}, { reconnectPeriod: 0 }));
    expect(error.name).toBe("TransientError");
    expect(error.message).toContain(`mqtt://u:redacted@127.0.0.1:${p1},mqtt://u:redacted@127.0.0.1:${p2}`);
    expect(error.message).not.toContain("pw-one");
  });

  it("serverNameFollowsHost: each TLS connection names its own broker (SNI), not the first one of the list", async () => {
    const names: (string | null)[] = [];
    // ClientHello is all this server reads: it records the name asked for and ends the connection.
    const tlsServer: Server = createServer((socket) => {
      socket.once("data", (hello: Buffer) => {
        names.push(sniOf(hello));
        socket.destroy();
      });
    });
    await new Promise<void>((resolve) => tlsServer.listen(0, "127.0.0.1", resolve));
    const port = (tlsServer.address() as { port: number }).port;
    const { openClient } = await import("../../src/mqtt/connect.js");
    const client = track(openClient(`mqtts://localhost:${port},mqtts://127.0.0.1:${port}`, {}, 4, { reconnectPeriod: 50, connectTimeout: 2000 }));
    client.on("error", () => {});
    try {
      await waitFor("three connection attempts", () => names.length >= 3, 20_000);
      // localhost is named; 127.0.0.1 is an address, which TLS never sends as a name.
      expect(names.slice(0, 3)).toEqual(["localhost", null, "localhost"]);
    } finally {
      client.end(true);
      tlsServer.close();
    }
  });
});

/** The server name (SNI) of a TLS ClientHello, null when it carries none. */
function sniOf(hello: Buffer): string | null {
  // record header 5, handshake header 4, version 2, random 32
  let at = 5 + 4 + 2 + 32;
  at += 1 + hello[at]!; // session id
  at += 2 + hello.readUInt16BE(at); // cipher suites
  at += 1 + hello[at]!; // compression methods
  const end = at + 2 + hello.readUInt16BE(at);
  at += 2;
  while (at + 4 <= end) {
    const type = hello.readUInt16BE(at);
    const length = hello.readUInt16BE(at + 2);
    if (type === 0) return hello.subarray(at + 9, at + 4 + length).toString("latin1");
    at += 4 + length;
  }
  return null;
}

describe("the sink and a broker that stops acknowledging (issue 18: a cluster node stuck in a leader election)", () => {
  it("drops a connection that acknowledges nothing for ACK_TIMEOUT_MS and sends the waiting message again to the next broker of the list", async () => {
    // A broker that takes the connection and the PUBLISH and never answers it (authorizePublish never calls back).
    const silent = await Aedes.createBroker();
    silent.authorizePublish = () => {};
    const silentServer = createServer(silent.handle);
    await new Promise<void>((resolve) => silentServer.listen(0, "127.0.0.1", resolve));
    const silentUrl = `mqtt://127.0.0.1:${(silentServer.address() as { port: number }).port}`;
    const { MqttSink, ACK_TIMEOUT_MS } = await import("../../src/sinks/mqtt/sink.js");
    const { createLogger } = await import("../../src/ops/log.js");
    const warnings: string[] = [];
    const logger = createLogger("warn", { tee: (line) => warnings.push(line) });
    const sink = new MqttSink({ url: `${silentUrl},${broker.url}`, qos: 1, clientId: "sink-ack-timeout", maxInFlight: 10, logger });
    const subscriber = track(await mqtt.connectAsync(broker.url, { protocolVersion: 5 }));
    const received: string[] = [];
    subscriber.on("message", (_topic, payload) => received.push(payload.toString()));
    await subscriber.subscribeAsync("ack-timeout/#", { qos: 1 });
    try {
      await sink.connect();
      const started = Date.now();
      const delivered = new Promise<Error | undefined>((resolve) => sink.publish({ topic: "ack-timeout/x", payload: Buffer.from("kept"), properties: {} }, resolve));
      expect(await delivered).toBeUndefined();
      const waited = Date.now() - started;
      expect(waited).toBeGreaterThanOrEqual(ACK_TIMEOUT_MS);
      await waitFor("the message at the next broker's subscriber", () => received.includes("kept"), 20_000);
      expect(warnings.join("\n")).toMatch(/acknowledged nothing for 20 s with messages waiting/);
    } finally {
      await sink.close();
      await new Promise<void>((resolve) => silentServer.close(() => resolve()));
      await new Promise<void>((resolve) => silent.close(() => resolve()));
    }
  }, 90_000);
});
