import { randomBytes } from "node:crypto";
import { ConfigError } from "../errors.js";
import { type Logger, redactUrl } from "../ops/log.js";
import type { SinkConfig } from "../sinks/config.js";
import { MqttSink } from "../sinks/mqtt/sink.js";
import type { RedisSink } from "../sinks/redis/sink.js";
import type { BrokerCredentials } from "../mqtt/connect.js";

/**
 * The sink `run` publishes to: Redis when its URL is given, else the MQTT broker. The Redis sink
 * (and node-redis, about 20 MB of resident memory) is loaded only when used.
 */
export async function createSink(config: SinkConfig, credentials: BrokerCredentials, slot: string, logger: Logger): Promise<MqttSink | RedisSink> {
  if (config.redisUrl) {
    const { RedisSink } = await import("../sinks/redis/sink.js");
    return new RedisSink({ url: config.redisUrl, maxInFlight: config.maxInFlight, ...(config.redisCa ? { ca: config.redisCa } : {}), logger });
  }
  return new MqttSink({
    url: config.mqtt.url,
    qos: config.mqtt.qos,
    clientId: config.mqtt.clientId ?? `tera-cdc-${slot}-${randomBytes(4).toString("hex")}`,
    ...credentials,
    maxInFlight: config.maxInFlight,
    logger,
  });
}

/** Signed messages carry their signature in MQTT 5 user properties: a connected 3.1.1 broker is a configuration error. */
export function checkSigningPossible(sink: MqttSink | RedisSink, config: SinkConfig, signed: boolean): void {
  if (sink instanceof MqttSink && signed && !sink.isMqtt5) {
    throw new ConfigError(`the broker at ${redactUrl(config.mqtt.url)} speaks only MQTT 3.1.1, which has no user properties to carry the signature: use an MQTT 5 broker (Mosquitto) or leave out --signing-key-file`);
  }
}
