import { EventEmitter } from "node:events";
import type mqtt from "mqtt";
import type { MqttClient } from "mqtt";
import { attemptConnect, type BrokerCredentials, brokerUrls, clientOptions, nextReconnectDelay, RECONNECT_FIRST_DELAY_MS } from "../../mqtt/connect.js";
import { beforeReconnectScheduled, publishQos1, setReconnectPeriod, writePublishesWith } from "../../mqtt/internals.js";
import { PublishEncoder } from "../../mqtt/publish-packet.js";
import type { Logger } from "../../ops/log.js";
import type { DeliveryCallback, OutgoingMessage, SinkConnection } from "../../pipeline/ports.js";


export interface MqttSinkOptions {
  /** One broker, or a comma-separated list of a cluster's brokers (src/mqtt/connect.ts: failover). */
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
/**
 * A connected broker that acknowledges nothing for this long, while messages wait for it, is taken
 * as lost: the connection is dropped, so mqtt.js moves to the next broker of the list (or
 * reconnects to the one) and sends the unacknowledged window again. Seen with a NATS cluster node
 * that kept the connection open, and kept reading it slowly, but acknowledged nothing more after
 * the node that led its JetStream storage was lost. A large message still leaving our socket
 * buffer is progress, not silence.
 */
export const ACK_TIMEOUT_MS = 20_000;
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
  private reconnectDelay = RECONNECT_FIRST_DELAY_MS;
  private readonly credentials: BrokerCredentials;
  private brokerMaxPacket = Number.POSITIVE_INFINITY;
  private closing = false;
  /** While connect() is between attempts or in one: what close() cuts short (SIGTERM at start). */
  private connecting: MqttClient | null = null;
  private wakeRetry: (() => void) | null = null;
  /** Set when the window filled up; cleared once half of it is acknowledged (see hasRoom). */
  private refilling = false;
  /** The broker of the list the next first connection attempt goes to. */
  private nextBroker = 0;
  /**
   * When the watch (every second) last saw the broker acknowledge or take bytes, or nothing waiting
   * for it (see ACK_TIMEOUT_MS). The hot path only counts acknowledgements; the watch reads the clock.
   */
  private lastAckAt = Date.now();
  private acknowledgements = 0;
  private acknowledgementsSeen = 0;
  /** Bytes the socket had handed to the kernel at the last check. */
  private dispatched = 0;
  private ackWatch: NodeJS.Timeout | undefined;
  /** Our PUBLISH packets, encoded once into one buffer each (src/mqtt/publish-packet.ts). */
  private readonly encoder = new PublishEncoder();

  constructor(private readonly options: MqttSinkOptions) {
    super();
    this.window = options.maxInFlight;
    this.credentials = { username: options.username, password: options.password, ca: options.ca, cert: options.cert, key: options.key };
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
   * reconnecting with backoff after that. Resolves at the first connection. A broker that refuses
   * the credentials is told as such and tried again (at the same protocol): its password file may
   * be fixed while tera-cdc waits, /healthz says 503 meanwhile. With a list of brokers, each is
   * tried in turn before waiting; once connected, a lost connection moves on to the next broker
   * with the unacknowledged window sent again there (mqtt.js's outgoing store, src/mqtt/connect.ts).
   */
  async connect(): Promise<void> {
    const brokers = brokerUrls(this.options.url).length;
    let triedThisRound = 0;
    for (;;) {
      if (this.closing) throw new Error("sink closed");
      const outcome = await attemptConnect(this.options.url, clientOptions(this.credentials, this.protocolVersion, {
        clientId: this.options.clientId,
        clean: true,
        reconnectPeriod: 0,
        // Resending the unacknowledged window after a reconnect is mqtt.js' job; refusing new
        // messages while away is ours (hasRoom).
        queueQoSZero: false,
        // mqtt.js's default moves its keep-alive timer at every acknowledgement (a clearTimeout and a
        // setTimeout per PUBACK: ~3 % of the one-event path and a Timeout object of garbage each);
        // without it a PINGREQ goes out every keep-alive period whatever the traffic, and a broker
        // that stops answering is still noticed the same way (no PINGRESP within 1.5 periods).
        reschedulePings: false,
        properties: { requestProblemInformation: true },
      }), (attempt) => (this.connecting = attempt), this.nextBroker);
      if ("client" in outcome) {
        this.adopt(outcome.client, outcome.connack.properties);
        return;
      }
      if (outcome.failure === "unsupported-protocol" && this.protocolVersion === 5) {
        this.options.logger.info("broker does not speak MQTT 5; using MQTT 3.1.1 (no user properties)");
        this.protocolVersion = 4;
        continue;
      }
      const reason = outcome.failure === "refused-credentials" ? `the broker refused the credentials (${outcome.error.message})` : outcome.error.message;
      this.nextBroker = (this.nextBroker + 1) % brokers;
      if (++triedThisRound < brokers) {
        this.options.logger.warn(`broker unreachable: ${reason}; trying the next broker of the list`);
        continue;
      }
      triedThisRound = 0;
      this.emit("disconnected", reason);
      this.options.logger.warn({ retryInMs: this.reconnectDelay }, `broker unreachable: ${reason}; retrying`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, this.reconnectDelay);
        this.wakeRetry = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.wakeRetry = null;
      this.reconnectDelay = nextReconnectDelay(this.reconnectDelay);
    }
  }

  private adopt(client: MqttClient, connack: { receiveMaximum?: number; maximumPacketSize?: number } | undefined): void {
    this.client = client;
    this.lastAckAt = Date.now();
    this.ackWatch = setInterval(() => this.dropSilentBroker(client), 1000);
    this.ackWatch.unref();
    this.reconnectDelay = RECONNECT_FIRST_DELAY_MS;
    this.applyBrokerLimits(connack);
    setReconnectPeriod(client, this.reconnectDelay);
    client.on("connect", (packet: mqtt.IConnackPacket) => {
      // A broker restarted with another configuration may announce other limits.
      this.applyBrokerLimits(packet.properties);
      this.lastAckAt = Date.now();
      this.reconnectDelay = RECONNECT_FIRST_DELAY_MS;
      setReconnectPeriod(client, this.reconnectDelay);
      this.options.logger.info({ broker: `${client.options.hostname ?? client.options.host}:${client.options.port}` }, "broker connection restored");
      client.stream?.on?.("drain", () => this.emit("room"));
      this.emit("connected");
      this.emit("room");
    });
    beforeReconnectScheduled(client, () => {
      if (this.closing) return;
      this.emit("disconnected", "connection closed");
      // mqtt.js reconnects every reconnectPeriod; back off up to 30 s while the broker stays away.
      setReconnectPeriod(client, this.reconnectDelay);
      this.reconnectDelay = nextReconnectDelay(this.reconnectDelay);
    });
    writePublishesWith(client, (packet, protocolVersion) => this.encoder.encode(packet, protocolVersion));
    client.on("offline", () => this.options.logger.warn("broker connection lost; reconnecting"));
    client.on("error", (error) => this.options.logger.warn(`broker error: ${error.message}`));
    client.stream?.on?.("drain", () => this.emit("room"));
    this.emit("connected");
  }

  /** Drops the connection of a broker that stopped acknowledging (ACK_TIMEOUT_MS). */
  private dropSilentBroker(client: MqttClient): void {
    const socket = client.stream as { bytesWritten?: number; writableLength?: number } | undefined;
    const dispatched = (socket?.bytesWritten ?? 0) - (socket?.writableLength ?? 0);
    // Our own backlog still leaving the socket (a large message) counts as progress.
    if (dispatched !== this.dispatched && (socket?.writableLength ?? 0) > 0) this.lastAckAt = Date.now();
    this.dispatched = dispatched;
    if (this.acknowledgements !== this.acknowledgementsSeen || this.inFlight === 0) this.lastAckAt = Date.now();
    this.acknowledgementsSeen = this.acknowledgements;
    if (this.closing || !client.connected || this.inFlight === 0) return;
    const silentMs = Date.now() - this.lastAckAt;
    if (silentMs < ACK_TIMEOUT_MS) return;
    this.options.logger.warn({ inFlight: this.inFlight, silentMs }, `the broker acknowledged nothing for ${ACK_TIMEOUT_MS / 1000} s with messages waiting: dropping the connection, to send them again to the next broker`);
    this.lastAckAt = Date.now();
    client.stream?.destroy();
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
    const properties = this.protocolVersion === 5 ? { contentType: CONTENT_TYPE, userProperties: message.properties as Record<string, string> } : undefined;
    const payload = Buffer.isBuffer(message.payload)
      ? message.payload
      : Buffer.from(message.payload.buffer, message.payload.byteOffset, message.payload.byteLength);
    if (qos === 0) {
      // No callback: mqtt.js would add a drain listener per message (TOOLCHAIN.md).
      client.publish(message.topic, payload, { qos, properties });
      done();
      return;
    }
    if (++this.inFlight >= this.window) this.refilling = true;
    const acknowledged = (error?: Error | null) => {
      this.inFlight--;
      this.acknowledgements++;
      done(error ?? undefined);
      if (this.inFlight === this.window >> 1 || this.inFlight === 0) this.emit("room");
    };
    // QoS 1, the default: stored and numbered by mqtt.js without its per-message copy (src/mqtt/internals.ts, 5).
    if (qos === 1) publishQos1(client, message.topic, payload, properties, acknowledged);
    else client.publish(message.topic, payload, { qos, properties }, acknowledged);
  }

  /**
   * Waits until the broker acknowledged everything in flight, at most `timeoutMs`; with
   * `onlyWhileConnected`, not while the broker is away (no acknowledgement comes then: a SIGTERM
   * during an outage stops at once, and what was in flight is sent again after the restart).
   */
  async drained(timeoutMs: number, onlyWhileConnected = false): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (this.inFlight > 0 && Date.now() < deadline && (!onlyWhileConnected || this.connected)) await sleep(20);
    return this.inFlight === 0;
  }

  async close(): Promise<void> {
    this.closing = true;
    clearInterval(this.ackWatch);
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

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
