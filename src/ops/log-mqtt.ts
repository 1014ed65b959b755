import type { MqttClient } from "mqtt";
import { openClient, readCredentials } from "../mqtt/connect.js";
import { encodeMessage, LogEvent, LogEvent_LogLevel, logTopic, type LogTopicLevel, teraEvent, toMqttTopic } from "../messages/index.js";

const LEVELS: Record<number, { topic: LogTopicLevel; level: LogEvent_LogLevel }> = {
  10: { topic: "trace", level: LogEvent_LogLevel.LOGLEVEL_TRACE },
  20: { topic: "debug", level: LogEvent_LogLevel.LOGLEVEL_DEBUG },
  30: { topic: "info", level: LogEvent_LogLevel.LOGLEVEL_INFO },
  40: { topic: "warning", level: LogEvent_LogLevel.LOGLEVEL_WARNING },
  50: { topic: "error", level: LogEvent_LogLevel.LOGLEVEL_ERROR },
  60: { topic: "fatal", level: LogEvent_LogLevel.LOGLEVEL_FATAL },
};

/**
 * One pino JSON line as OpenTera publishes its logs: a LogEvent in a TeraEvent whose header topic
 * is `log.<level>`, on the MQTT topic `log/<level>`. The message is the log message followed by
 * its fields as JSON, so nothing a reader of the log file sees is lost. Pure; null for a line
 * that is not a pino record.
 */
export function logEventMessage(jsonLine: string, sender: string): { topic: string; payload: Uint8Array } | null {
  let entry: Record<string, unknown>;
  try {
    entry = JSON.parse(jsonLine) as Record<string, unknown>;
  } catch {
    return null;
  }
  const { level, time, msg, ...fields } = entry;
  const mapped = LEVELS[typeof level === "number" ? level : 30] ?? LEVELS[30]!;
  const seconds = typeof time === "number" ? time / 1000 : Date.now() / 1000;
  const text = `${typeof msg === "string" ? msg : ""}${Object.keys(fields).length > 0 ? ` ${JSON.stringify(fields)}` : ""}`;
  const dotted = logTopic(mapped.topic);
  const event = teraEvent({
    topic: dotted,
    time: seconds,
    events: [{ $type: LogEvent.$type, level: mapped.level, timestamp: seconds, sender, message: text }],
  });
  return { topic: toMqttTopic(dotted), payload: encodeMessage(event) };
}

/** Lines kept while the broker is not connected; older ones are dropped first. */
const MAX_PENDING = 1000;

/**
 * `--log-to-mqtt`: forwards tera-cdc's own log lines to the broker at QoS 0 on a connection of its
 * own, so logs never take room in the change stream's in-flight window nor wait for its
 * acknowledgements. Lines logged before `connect` (or while the broker is away) wait in a
 * bounded queue.
 */
export class MqttLogForwarder {
  private client: MqttClient | null = null;
  private pending: string[] = [];
  dropped = 0;

  constructor(private readonly sender: string) {}

  /** The tee given to createLogger: never throws, never logs (that would loop). */
  readonly write = (jsonLine: string): void => {
    if (this.client?.connected) {
      this.send(jsonLine);
      return;
    }
    this.pending.push(jsonLine);
    if (this.pending.length > MAX_PENDING) {
      this.pending.shift();
      this.dropped++;
    }
  };

  /** Connects with the same credentials and TLS files as the change stream. */
  connect(url: string, auth: { username?: string; password?: string; caFile?: string; certFile?: string; keyFile?: string } = {}): void {
    if (this.client) return;
    // MQTT 3.1.1: log events carry no properties, and every broker speaks it.
    const client = openClient(url, readCredentials(auth), 4, {
      clientId: `${this.sender}-logs-${Math.random().toString(16).slice(2, 10)}`,
      reconnectPeriod: 2000,
      clean: true,
      queueQoSZero: false,
    });
    client.on("error", () => {});
    client.on("connect", () => {
      const waiting = this.pending;
      this.pending = [];
      for (const line of waiting) this.send(line);
    });
    this.client = client;
  }

  async close(): Promise<void> {
    await this.client?.endAsync().catch(() => {});
    this.client = null;
  }

  private send(jsonLine: string): void {
    try {
      const message = logEventMessage(jsonLine, this.sender);
      if (message) this.client!.publish(message.topic, Buffer.from(message.payload), { qos: 0 });
    } catch {
      this.dropped++;
    }
  }
}
