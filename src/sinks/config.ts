import type { BrokerCredentialFiles } from "../mqtt/connect.js";

/** The MQTT broker events (and RPC replies and log lines) go to, with its credentials as settings name them. */
export interface MqttSinkConfig extends BrokerCredentialFiles {
  readonly url: string;
  readonly qos: 0 | 1 | 2;
  /** Default: tera-cdc-<slot>-<random>. */
  readonly clientId?: string;
}

/** The sink's part of run's configuration: MQTT, or Redis (OpenTera's transport) in its place. */
export interface SinkConfig {
  readonly mqtt: MqttSinkConfig;
  /** Publish events to Redis instead of MQTT; RPC is then off (docs/opentera.md). */
  readonly redisUrl?: string;
  /** CA certificate for a rediss:// redisUrl signed by a private CA (--redis-ca). */
  readonly redisCa?: Buffer;
  /** Messages awaiting the broker's acknowledgement at most. */
  readonly maxInFlight: number;
}
