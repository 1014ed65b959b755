import mqtt from "mqtt";
import { decodeTeraEvent, unpackAny } from "../../src/messages/index.js";

/** One DatabaseEvent as an independent subscriber sees it on the broker. */
export interface ReceivedEvent {
  readonly topic: string;
  readonly headerTopic: string;
  readonly time: number;
  readonly type: number;
  readonly model: string;
  readonly object: Record<string, unknown>;
  readonly objectText: string;
  readonly properties: Record<string, string>;
  readonly contentType: string | undefined;
  readonly lsn: string;
  readonly seq: number;
  readonly receivedAt: number;
}

export interface Consumer {
  readonly events: ReceivedEvent[];
  /** Raw payloads, for byte-level checks. */
  readonly payloads: Buffer[];
  waitForCount(count: number, timeoutMs?: number): Promise<ReceivedEvent[]>;
  close(): Promise<void>;
}

/** Subscribes (MQTT 5, QoS 1) to `topic` and decodes every TeraEvent. */
export async function startConsumer(url: string, topic = "module/TeraServer/DatabaseModule/events/#", options: mqtt.IClientOptions = {}): Promise<Consumer> {
  const client = await mqtt.connectAsync(url, { protocolVersion: 5, clean: true, reconnectPeriod: 200, ...options });
  const events: ReceivedEvent[] = [];
  const payloads: Buffer[] = [];
  const waiters = new Set<() => void>();
  client.on("message", (topicName, payload, packet) => {
    payloads.push(payload);
    const decoded = decodeTeraEvent(payload);
    if (!decoded.ok) throw new Error(`undecodable payload on ${topicName}: ${decoded.error.message}`);
    const properties = (packet.properties?.userProperties ?? {}) as Record<string, string>;
    const event = decoded.message;
    let seq = Number(properties.seq ?? 0);
    for (const any of event.events) {
      const unpacked = unpackAny(any);
      if (unpacked.type !== "DatabaseEvent") throw new Error(`unexpected ${unpacked.type} on ${topicName}`);
      const db = unpacked.message;
      events.push({
        topic: topicName,
        headerTopic: event.header?.topic ?? "",
        time: event.header?.time ?? 0,
        type: db.type,
        model: db.objectType,
        object: JSON.parse(db.objectValue),
        objectText: db.objectValue,
        properties,
        contentType: packet.properties?.contentType,
        lsn: properties.lsn ?? "",
        seq: seq++,
        receivedAt: Date.now(),
      });
    }
    for (const wake of waiters) wake();
  });
  await client.subscribeAsync(topic, { qos: 1 });
  return {
    events,
    payloads,
    waitForCount(count, timeoutMs = 30_000) {
      if (events.length >= count) return Promise.resolve(events);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`expected ${count} events, got ${events.length} within ${timeoutMs} ms`));
        }, timeoutMs);
        const check = () => {
          if (events.length >= count) {
            clearTimeout(timer);
            waiters.delete(check);
            resolve(events);
          }
        };
        waiters.add(check);
      });
    },
    async close() {
      await client.endAsync(true);
    },
  };
}
