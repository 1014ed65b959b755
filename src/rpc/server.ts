import type { MqttClient } from "mqtt";
import { type BrokerCredentials, connectBroker, RECONNECT_STEADY_MS } from "../mqtt/connect.js";
import { moduleRpcTopic, toMqttTopic } from "../messages/index.js";
import type { Logger } from "../ops/log.js";
import { handleRpc, type RpcMethodSpec, type RpcPolicy } from "./dispatch.js";

export interface RpcServerOptions {
  readonly url: string;
  /** OpenTera module name: requests arrive on `module/<name>/rpc`. */
  readonly moduleName: string;
  readonly credentials: BrokerCredentials;
  readonly clientId: string;
  readonly methods: Readonly<Record<string, RpcMethodSpec>>;
  readonly policy: RpcPolicy;
  readonly logger: Logger;
}

/**
 * Listens for OpenTera RPCMessages on the module's RPC topic and answers each on its reply_to
 * topic. Its own MQTT connection (MQTT 5, falling back to 3.1.1), separate from the event sink's,
 * so requests and replies never wait behind the change stream's window. Also publishes JSON
 * reports (snapshot progress).
 */
export class RpcServer {
  private client: MqttClient | null = null;
  readonly topic: string;

  constructor(private readonly options: RpcServerOptions) {
    this.topic = toMqttTopic(moduleRpcTopic(options.moduleName));
  }

  async start(): Promise<void> {
    const o = this.options;
    // MQTT 5, or 3.1.1 when the broker does not speak 5; refused credentials are reported as such.
    const { client } = await connectBroker(o.url, o.credentials, { clientId: o.clientId, reconnectPeriod: RECONNECT_STEADY_MS });
    client.on("error", (error) => o.logger.warn(`RPC connection: ${error.message}`));
    client.on("message", (topic, payload) => {
      if (topic !== this.topic) return;
      void this.answer(payload);
    });
    // Subscribe again after every reconnect (clean sessions keep no subscriptions).
    client.on("connect", () => void client.subscribeAsync(this.topic, { qos: 1 }).catch(() => {}));
    await client.subscribeAsync(this.topic, { qos: 1 });
    this.client = client;
    o.logger.info({ topic: this.topic }, "listening for RPC requests");
  }

  /** Publishes a JSON document (QoS 1); never throws. */
  publishJson(topic: string, value: unknown, properties: Record<string, string> = {}): void {
    this.client?.publish(topic, JSON.stringify(value), { qos: 1, properties: { contentType: "application/json", userProperties: properties } }, () => {});
  }

  async close(): Promise<void> {
    const client = this.client;
    this.client = null;
    if (client) await client.endAsync(false).catch(() => client.end(true));
  }

  private async answer(payload: Buffer): Promise<void> {
    const outcome = await handleRpc(payload, this.options.methods, this.options.policy);
    const log = { method: outcome.method, replyTo: outcome.topic };
    if (outcome.topic === null) {
      this.options.logger.warn(log, `RPC request not answered: ${JSON.parse(outcome.reply).error}`);
      return;
    }
    if (outcome.ok) this.options.logger.info(log, "RPC request answered");
    else if (outcome.internal) this.options.logger.error({ ...log, code: outcome.internal.code, reference: outcome.internal.reference }, `RPC request failed: ${outcome.internal.logged}`);
    else this.options.logger.warn(log, `RPC request refused: ${JSON.parse(outcome.reply).error}`);
    this.client?.publish(outcome.topic, outcome.reply, { qos: 1, properties: { contentType: "application/json" } }, () => {});
  }
}
