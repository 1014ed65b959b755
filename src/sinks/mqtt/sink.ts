import { EventEmitter } from "node:events";
import mqtt, { type IClientOptions, type MqttClient } from "mqtt";
import type { Logger } from "../../ops/log.js";
import type { DeliveryCallback, OutgoingMessage, SinkConnection } from "../../pipeline/ports.js";


export interface MqttSinkOptions {
  readonly url: string;
  readonly qos: 0 | 1 | 2;
  readonly clientId: string;
  readonly username?: string;
  readonly password?: string;
  readonly ca?: Buffer;
  readonly cert?: Buffer;
  readonly key?: Buffer;
  /** Most QoS 1/2 messages awaiting acknowledgement; the broker's Receive Maximum lowers it. */
  readonly maxInFlight: number;
  readonly logger: Logger;
}

const CONTENT_TYPE = "application/x-protobuf";
const MAX_RECONNECT_DELAY_MS = 30_000;
const FIRST_RECONNECT_DELAY_MS = 500;
/** QoS 0 has no acknowledgement: stop when this much sits unwritten in the socket. */
const QOS0_SOCKET_HIGH_WATER = 4 * 1024 * 1024;

/**
 * Publishes to the broker with a bounded window of unacknowledged messages. It never buffers
 * without bound: when the window is full (or the broker is away) `hasRoom` is false and the
 * pipeline stops reading WAL until the `room` event.
 *
 * Events: `room` (more may be published), `connected`, `disconnected` (error message or reason).
 */
export class MqttSink extends EventEmitter implements SinkConnection {
  private client: MqttClient | null = null;
  private inFlight = 0;
  private window: number;
  private protocolVersion: 4 | 5 = 5;
  private reconnectDelay = FIRST_RECONNECT_DELAY_MS;
  private brokerMaxPacket = Number.POSITIVE_INFINITY;
  private closing = false;
  /** While connect() is between attempts or in one: what close() cuts short (SIGTERM at start). */
  private connecting: MqttClient | null = null;
  private wakeRetry: (() => void) | null = null;
  /** Set when the window filled up; cleared once half of it is acknowledged (see hasRoom). */
  private refilling = false;

  constructor(private readonly options: MqttSinkOptions) {
    super();
    this.window = options.maxInFlight;
  }

  get connected(): boolean {
    return this.client?.connected ?? false;
  }

  get messagesInFlight(): number {
    return this.inFlight;
  }

  /** Whether the broker speaks MQTT 5 (user properties and content type are sent). */
  get isMqtt5(): boolean {
    return this.protocolVersion === 5;
  }

  get protocol(): string {
    return this.isMqtt5 ? "MQTT 5" : "MQTT 3.1.1";
  }

  /** Largest packet the broker accepts (its Maximum Packet Size), infinite when it set none. */
  get maxMessageBytes(): number {
    return this.brokerMaxPacket;
  }

  get hasRoom(): boolean {
    if (!this.client?.connected) return false;
    if (this.options.qos === 0) return (this.client.stream?.writableLength ?? 0) < QOS0_SOCKET_HIGH_WATER;
    // Once full, take more only after half the window is acknowledged: refilling in bursts lets
    // mqtt.js write many packets per syscall and the pipeline pause the WAL socket once per
    // burst, not one publish, one write and one pause/resume per acknowledgement (issue 5 profile).
    if (this.refilling) {
      if (this.inFlight > this.window >> 1) return false;
      this.refilling = false;
    }
    return this.inFlight < this.window;
  }

  /**
   * Connects, finding out whether the broker speaks MQTT 5 (3.1.1 otherwise), and keeps
   * reconnecting with backoff after that. Resolves at the first connection.
   */
  async connect(): Promise<void> {
    for (;;) {
      if (this.closing) throw new Error("sink closed");
      const outcome = await this.tryConnect(this.protocolVersion);
      if (outcome === "connected") return;
      if (outcome === "unsupported-protocol" && this.protocolVersion === 5) {
        this.options.logger.info("broker does not speak MQTT 5; using MQTT 3.1.1 (no user properties)");
        this.protocolVersion = 4;
        continue;
      }
      this.emit("disconnected", outcome);
      this.options.logger.warn({ retryInMs: this.reconnectDelay }, `broker unreachable: ${outcome}; retrying`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, this.reconnectDelay);
        this.wakeRetry = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.wakeRetry = null;
      this.reconnectDelay = Math.min(this.reconnectDelay * 2, MAX_RECONNECT_DELAY_MS);
    }
  }

  private tryConnect(protocolVersion: 4 | 5): Promise<"connected" | "unsupported-protocol" | string> {
    const o = this.options;
    const clientOptions: IClientOptions = {
      protocolVersion,
      clientId: o.clientId,
      clean: true,
      username: o.username,
      password: o.password,
      ca: o.ca,
      cert: o.cert,
      key: o.key,
      reconnectPeriod: 0,
      connectTimeout: 10_000,
      keepalive: 30,
      // mqtt.js calls its debug logger several times per publish; even disabled that costs ~4%
      // of the hot path (bench profile). Our own logs say what matters.
      log: () => {},
      // Resending the unacknowledged window after a reconnect is mqtt.js' job; refusing new
      // messages while away is ours (hasRoom).
      queueQoSZero: false,
      properties: protocolVersion === 5 ? { requestProblemInformation: true } : undefined,
    };
    const client = mqtt.connect(o.url, clientOptions);
    this.connecting = client;
    return new Promise((resolve) => {
      // Only our own listeners come off: mqtt.js keeps its state (connected, reconnect, queued
      // packets) in listeners of its own on the same events, so removeAllListeners() would leave
      // a client that never notices a lost broker.
      const detach = () => {
        this.connecting = null;
        client.off("connect", onConnect);
        client.off("error", onError);
        client.off("close", onClose);
      };
      const fail = (reason: string) => {
        detach();
        client.on("error", () => {});
        client.end(true);
        resolve(reason);
      };
      const onConnect = (connack: mqtt.IConnackPacket) => {
        detach();
        this.adopt(client, connack.properties);
        resolve("connected");
      };
      const onError = (error: Error & { code?: number }) => {
        const unsupported = /unsupported protocol|protocol version/i.test(error.message) || error.code === 132 || error.code === 1;
        fail(unsupported ? "unsupported-protocol" : error.message);
      };
      const onClose = () => fail(protocolVersion === 5 ? "unsupported-protocol" : "connection closed by the broker");
      client.once("connect", onConnect);
      client.once("error", onError);
      client.once("close", onClose);
    });
  }

  private adopt(client: MqttClient, connack: { receiveMaximum?: number; maximumPacketSize?: number } | undefined): void {
    this.client = client;
    this.reconnectDelay = FIRST_RECONNECT_DELAY_MS;
    this.applyBrokerLimits(connack);
    client.options.reconnectPeriod = this.reconnectDelay;
    client.on("connect", (packet: mqtt.IConnackPacket) => {
      // A broker restarted with another configuration may announce other limits.
      this.applyBrokerLimits(packet.properties);
      this.reconnectDelay = FIRST_RECONNECT_DELAY_MS;
      client.options.reconnectPeriod = this.reconnectDelay;
      this.options.logger.info("broker connection restored");
      coalesceWrites(client.stream);
      client.stream?.on?.("drain", () => this.emit("room"));
      this.emit("connected");
      this.emit("room");
    });
    // Before mqtt.js' own close listener, which schedules the next attempt with this period.
    client.prependListener("close", () => {
      if (this.closing) return;
      this.emit("disconnected", "connection closed");
      // mqtt.js reconnects every reconnectPeriod; back off up to 30 s while the broker stays away.
      client.options.reconnectPeriod = this.reconnectDelay;
      this.reconnectDelay = Math.min(this.reconnectDelay * 2, MAX_RECONNECT_DELAY_MS);
    });
    client.on("offline", () => this.options.logger.warn("broker connection lost; reconnecting"));
    client.on("error", (error) => this.options.logger.warn(`broker error: ${error.message}`));
    coalesceWrites(client.stream);
    client.stream?.on?.("drain", () => this.emit("room"));
    this.emit("connected");
  }

  private applyBrokerLimits(connack: { receiveMaximum?: number; maximumPacketSize?: number } | undefined): void {
    // MQTT 5 forbids more unacknowledged QoS>0 publishes than the broker's Receive Maximum.
    this.window = Math.max(1, Math.min(this.options.maxInFlight, connack?.receiveMaximum ?? 65_535));
    this.brokerMaxPacket = connack?.maximumPacketSize ?? Number.POSITIVE_INFINITY;
  }

  /** Bytes the MQTT packet of this message takes (payload, topic, properties, fixed header). */
  messageBytes(message: OutgoingMessage): number {
    let size = message.payload.length + Buffer.byteLength(message.topic) + 2 + 2 + 5;
    if (this.protocolVersion === 5) {
      size += 4 + CONTENT_TYPE.length + 3;
      for (const key in message.properties) {
        size += 5 + Buffer.byteLength(key) + Buffer.byteLength(message.properties[key]!);
      }
    }
    return size;
  }

  publish(message: OutgoingMessage, done: DeliveryCallback): void {
    const client = this.client;
    if (!client) {
      done(new Error("not connected to the broker"));
      return;
    }
    const qos = this.options.qos;
    const options: mqtt.IClientPublishOptions = { qos };
    if (this.protocolVersion === 5) {
      options.properties = { contentType: CONTENT_TYPE, userProperties: message.properties as Record<string, string> };
    }
    const payload = Buffer.isBuffer(message.payload)
      ? message.payload
      : Buffer.from(message.payload.buffer, message.payload.byteOffset, message.payload.byteLength);
    if (qos === 0) {
      // No callback: mqtt.js would add a drain listener per message (TOOLCHAIN.md).
      client.publish(message.topic, payload, options);
      done();
      return;
    }
    if (++this.inFlight >= this.window) this.refilling = true;
    client.publish(message.topic, payload, options, (error) => {
      this.inFlight--;
      done(error ?? undefined);
      if (this.inFlight === this.window >> 1 || this.inFlight === 0) this.emit("room");
    });
  }

  /** Waits until every published message is acknowledged, at most `timeoutMs`. */
  async drained(timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (this.inFlight > 0 && Date.now() < deadline) await sleep(20);
    return this.inFlight === 0;
  }

  async close(): Promise<void> {
    this.closing = true;
    // A connect() still trying (broker away, password refused) ends now, not after its wait.
    this.wakeRetry?.();
    this.connecting?.end(true);
    const client = this.client;
    this.client = null;
    if (!client) return;
    // A graceful end sends DISCONNECT and waits for it, for ever when the broker is away: only
    // try it while connected, and briefly.
    if (client.connected) {
      await Promise.race([client.endAsync(false).catch(() => {}), sleep(2000)]);
    }
    client.end(true);
  }
}

/** Larger corked batches (big payloads) are written as they are: copying them would cost more. */
const COALESCE_MAX_BYTES = 1024 * 1024;
type WritevChunks = { chunk: Buffer | string; encoding: BufferEncoding | "buffer" }[] & { allBuffers?: boolean };

/**
 * mqtt-packet writes one PUBLISH as ~40 small chunks (each property's key, value and lengths)
 * between cork() and uncork(), and Node hands the kernel one iovec per chunk: a quarter of
 * tera-cdc's CPU at 10,000 messages/s in the issue 5 profile. Joining each corked batch into one
 * buffer first is one copy of a few kilobytes instead.
 */
function coalesceWrites(stream: unknown): void {
  const socket = stream as { _writev?: (chunks: WritevChunks, callback: (error?: Error | null) => void) => void; teraCoalesced?: boolean } | undefined;
  if (!socket || typeof socket._writev !== "function" || socket.teraCoalesced) return;
  const writev = socket._writev;
  socket.teraCoalesced = true;
  socket._writev = function (this: unknown, chunks, callback) {
    if (chunks.length < 8 || (this as { writableLength: number }).writableLength > COALESCE_MAX_BYTES) return writev.call(this, chunks, callback);
    const joined: WritevChunks = [{ chunk: Buffer.concat(chunks.map((c) => (typeof c.chunk === "string" ? Buffer.from(c.chunk, c.encoding as BufferEncoding) : c.chunk))), encoding: "buffer" }];
    joined.allBuffers = true;
    return writev.call(this, joined, callback);
  };
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
