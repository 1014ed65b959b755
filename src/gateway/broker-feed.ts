import { randomUUID } from "node:crypto";
import type { MqttClient } from "mqtt";
import { ConfigError } from "../errors.js";
import { databaseEventTopic, toMqttTopic } from "../messages/index.js";
import { classifyConnectError, openClient, RECONNECT_STEADY_MS } from "../mqtt/connect.js";
import type { Logger } from "../ops/log.js";
import type { RpcBroker } from "./snapshots.js";
import type { GatewayStats } from "./stats.js";

/**
 * The broker refused MQTT 5: it speaks 3.1.1 only (aedes, the embedded fallback). The gateway needs
 * each event's position (lsn, seq user properties) to resume clients and to tell which changes the
 * current rows already hold, so it stops at once (exit 2) instead of retrying.
 */
const MQTT5_NEEDED =
  "setting mqtt-url: the broker speaks MQTT 3.1.1 only, and the gateway needs MQTT 5 (each event's lsn and seq, as user properties, for resume and for consistent initial rows): use an MQTT 5 broker such as Mosquitto 2 (npm start embeds one when /usr/sbin/mosquitto is installed)";
const CONNECT_TIMEOUT_MS = 30_000;

export interface BrokerSettings {
  readonly mqttUrl: string;
  readonly mqttUsername?: string;
  readonly mqttPassword?: string;
  readonly mqttCa?: Buffer;
  /** Models whose event topics are subscribed. */
  readonly models: readonly string[];
  readonly logger: Logger;
}

/** What the feed hands on. */
export interface BrokerHandlers {
  /** A message on an event topic, with its MQTT 5 user properties. */
  event(topic: string, payload: Buffer, properties: Record<string, string | string[]>): void;
  /** A message on the gateway's reply topic (answers to its RPC requests). */
  reply(payload: Buffer): void;
  /** The connection came back after a loss: events published meanwhile never reach the gateway. */
  gap(): void;
}

/**
 * The gateway's broker connection: MQTT 5 only (a 3.1.1 broker is a setting error, exit 2), ready
 * once the event topics are subscribed, reconnecting for ever after; also carries the gateway's RPC
 * requests and their replies.
 */
export class BrokerFeed implements RpcBroker {
  /** Under tera-cdc/cli/, the reply prefix tera-cdc answers by default (--rpc-reply-prefixes). */
  readonly replyTopic = `tera-cdc/cli/gateway-${randomUUID().slice(0, 8)}/reply`;
  private client: MqttClient | null = null;
  private everConnected = false;
  private stopping = false;

  constructor(
    private readonly settings: BrokerSettings,
    private readonly handlers: BrokerHandlers,
    private readonly stats: Pick<GatewayStats, "mqttConnected">,
  ) {}

  /** Connects and subscribes the event topics; fails after 30 s, or at once on a 3.1.1 broker. */
  async connect(): Promise<void> {
    const s = this.settings;
    const client = openClient(s.mqttUrl, { username: s.mqttUsername || undefined, password: s.mqttPassword || undefined, ca: s.mqttCa }, 5, {
      clean: true,
      clientId: `tera-cdc-gateway-${randomUUID().slice(0, 8)}`,
      reconnectPeriod: RECONNECT_STEADY_MS,
    });
    this.client = client;
    const topics = s.models.map((model) => toMqttTopic(databaseEventTopic(model)));
    // Ready means subscribed, not merely connected: events published before the broker has the
    // subscription never reach a clean session, and clients would miss them without a resync.
    let subscribed: (error?: Error) => void = () => {};
    const firstSubscription = new Promise<void>((resolve, reject) => {
      subscribed = (error) => (error ? reject(error) : resolve());
    });
    firstSubscription.catch(() => {}); // awaited below; a later failure is only logged
    client.on("connect", () => {
      this.stats.mqttConnected = true;
      if (this.everConnected) {
        // A clean session: whatever was published while we were away never reaches us.
        s.logger.warn("broker connection restored; events published meanwhile are lost to the gateway: clients resync");
        this.handlers.gap();
      }
      this.everConnected = true;
      client.subscribe(topics, { qos: 1 }, (error) => {
        if (error) s.logger.error(`subscribing to ${topics.join(", ")} failed: ${error.message}`);
        else s.logger.info({ topics }, "subscribed");
        subscribed(error ?? undefined);
      });
    });
    client.on("close", () => {
      if (this.stats.mqttConnected && !this.stopping) s.logger.warn("broker connection lost; reconnecting");
      this.stats.mqttConnected = false;
    });
    client.on("error", (error) => {
      // CONNACK "unacceptable protocol version" (3.1.1 code 1, MQTT 5 reason 132): retrying cannot help.
      if (!this.everConnected && classifyConnectError(error) === "unsupported-protocol") {
        // Forced and forgotten: a later stop() must not wait on a client that never connected.
        client.end(true);
        this.client = null;
        subscribed(new ConfigError(MQTT5_NEEDED));
        return;
      }
      s.logger.warn(`broker: ${error.message}`);
    });
    client.on("message", (topic, payload, packet) => {
      if (topic === this.replyTopic) return this.handlers.reply(payload);
      this.handlers.event(topic, payload, (packet.properties?.userProperties ?? {}) as Record<string, string | string[]>);
    });
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`broker ${s.mqttUrl.replace(/\/\/[^@]*@/, "//")} not reachable within 30 s: check --mqtt-url`)), CONNECT_TIMEOUT_MS);
    });
    try {
      await Promise.race([firstSubscription, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  publish(topic: string, bytes: Uint8Array): void {
    this.client?.publish(topic, Buffer.from(bytes), { qos: 1 });
  }

  async subscribe(topic: string): Promise<void> {
    await this.client?.subscribeAsync(topic, { qos: 1 });
  }

  async stop(): Promise<void> {
    this.stopping = true;
    // Forced: the gateway only subscribes, and a client still reconnecting would otherwise hold the stop.
    await this.client?.endAsync(true);
  }
}
