import { randomBytes } from "node:crypto";
import type mqtt from "mqtt";
import { connectBroker } from "../mqtt/connect.js";

/**
 * Whether the broker speaks MQTT 5 or only 3.1.1 (aedes, the embedded broker): a short probe
 * connection, refused with "unacceptable protocol version" by a 3.1.1 broker.
 */
export async function brokerProtocol(options: { readonly mqttUrl: string; readonly mqtt?: mqtt.IClientOptions }): Promise<4 | 5> {
  const { client, protocolVersion } = await connectBroker(options.mqttUrl, {}, {
    ...options.mqtt,
    clientId: `tera-cdc-probe-${randomBytes(6).toString("hex")}`,
    clean: true,
    reconnectPeriod: 0,
    properties: undefined,
  });
  client.on("error", () => {});
  client.end(true);
  return protocolVersion;
}
