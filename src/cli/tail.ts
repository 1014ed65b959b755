import { CHANGE_OPS, type ChangeOp, OP_OF_DB_EVENT_TYPE } from "../model/events.js";
import { createClient } from "redis";
import { connectBroker, type MqttCredentialSettings, mqttCredentials, RECONNECT_STEADY_MS } from "../mqtt/connect.js";
import { ConfigError, type SettingSpec } from "../config.js";
import { redisCa, redisClientOptions } from "../sinks/redis/connection.js";
import { DATABASE_EVENTS_TOPIC_PREFIX, decodeTeraEvent, toMqttTopic, unpackAny } from "../messages/index.js";
import { createLogger, type Logger, redactUrl } from "../ops/log.js";
import { flagsOnlyCommand, required } from "./help.js";
import { settingsNamed } from "./run-settings.js";
import { LOCAL_DATA_DIR_SETTING } from "../embedded/local.js";

/** The operation of a printed event (a truncate travels as a delete with the op property "truncate"). */
export type TailOp = ChangeOp;

/** One DatabaseEvent as `tail` prints it. */
export interface TailEvent {
  readonly topic: string;
  readonly model: string;
  readonly op: TailOp | "unknown";
  /** ISO time: the commit-time property, or the TeraEvent header time under MQTT 3.1.1. */
  readonly commitTime: string;
  readonly lsn?: string;
  readonly seq?: number;
  readonly xid?: string;
  readonly table?: string;
  readonly unchanged?: string[];
  readonly object: unknown;
}

/**
 * Decodes one MQTT message into the DatabaseEvents it carries (a batched TeraEvent carries
 * several: their seq counts up from the message's). Pure; throws an Error naming what is wrong.
 */
export function decodeTailEvents(topic: string, payload: Uint8Array, properties: Record<string, string | string[]> | undefined): TailEvent[] {
  const decoded = decodeTeraEvent(payload);
  if (!decoded.ok) throw new Error(`not a TeraEvent: ${decoded.error.message}`);
  const props: Record<string, string> = {};
  for (const [k, v] of Object.entries(properties ?? {})) props[k] = Array.isArray(v) ? v.join(",") : v;
  const headerTime = decoded.message.header?.time ?? 0;
  const commitTime = props["commit-time"] ?? new Date(headerTime * 1000).toISOString();
  const firstSeq = props.seq !== undefined ? Number(props.seq) : undefined;
  // The op property names one operation, or a batch's list of them; anything else is not taken.
  const singleOp = CHANGE_OPS.find((op) => op === props.op);
  const events: TailEvent[] = [];
  decoded.message.events.forEach((any, index) => {
    const unpacked = unpackAny(any);
    if (unpacked.type !== "DatabaseEvent") {
      throw new Error(`holds a ${unpacked.type === "unknown" || unpacked.type === "invalid" ? unpacked.typeUrl || "typeless Any" : unpacked.type}, not a DatabaseEvent`);
    }
    const db = unpacked.message;
    let object: unknown;
    try {
      object = JSON.parse(db.objectValue);
    } catch {
      object = db.objectValue;
    }
    let op: TailOp | "unknown" = decoded.message.events.length === 1 && singleOp ? singleOp : (OP_OF_DB_EVENT_TYPE[db.type] ?? "unknown");
    // MQTT 3.1.1 carries no op property: a truncate is still told apart, as the client library
    // does (src/client/change.ts), since a delete always carries its keys.
    if (props.op === undefined && op === "delete" && isEmptyObject(object)) op = "truncate";
    events.push({
      topic,
      model: db.objectType,
      op,
      commitTime,
      ...(props.lsn !== undefined ? { lsn: props.lsn } : {}),
      ...(firstSeq !== undefined ? { seq: firstSeq + index } : {}),
      ...(props.xid !== undefined ? { xid: props.xid } : {}),
      ...(props.table !== undefined ? { table: props.table } : {}),
      ...(props.unchanged ? { unchanged: props.unchanged.split(",") } : {}),
      object,
    });
  });
  return events;
}

function isEmptyObject(value: unknown): boolean {
  return value !== null && typeof value === "object" && !Array.isArray(value) && Object.keys(value).length === 0;
}

/** `device update 2024-05-01T12:00:00.123456Z lsn=0/16B3748 seq=0 {"id_device":1}`. Pure. */
export function formatTailLine(event: TailEvent): string {
  const parts = [event.model, event.op, event.commitTime];
  if (event.lsn !== undefined) parts.push(`lsn=${event.lsn}`);
  if (event.seq !== undefined) parts.push(`seq=${event.seq}`);
  if (event.unchanged) parts.push(`unchanged=${event.unchanged.join(",")}`);
  parts.push(typeof event.object === "string" ? event.object : JSON.stringify(event.object));
  return parts.join(" ");
}

export const TAIL_SETTINGS = [
  ...settingsNamed("mqtt-url", "redis-url", "redis-ca", "mqtt-username", "mqtt-password", "mqtt-ca", "mqtt-cert", "mqtt-key"),
  { name: "model", kind: { type: "string" }, help: "only events of this model (e.g. device)" },
  { name: "op", kind: { type: "enum", values: CHANGE_OPS }, help: "only events of this operation" },
  { name: "topic", kind: { type: "string" }, help: `MQTT topic filter to subscribe to [default: ${toMqttTopic(DATABASE_EVENTS_TOPIC_PREFIX)}/# , or the model's topic with --model]` },
  { name: "json", kind: { type: "bool" }, default: false, help: "print JSON Lines (topic, model, op, commitTime, lsn, seq, xid, table, object)" },
  { name: "count", kind: { type: "int", min: 1, max: 2_000_000_000 }, help: "exit after printing this many events" },
  ...settingsNamed("log-level"),
  LOCAL_DATA_DIR_SETTING,
] as const satisfies readonly SettingSpec[];

const USAGE = `Usage: tera-cdc tail --mqtt-url URL | --redis-url URL [--model M] [--op create|update|delete|truncate] [--json]

Subscribes to the DatabaseEvents tera-cdc publishes and prints each one decoded, one line each:
model, op, commit time, lsn, seq and the object's JSON (MQTT 3.1.1 brokers and Redis carry no lsn
or seq; on Redis the commit time is the TeraEvent's header time and --topic is a PSUBSCRIBE pattern).
Only events go to stdout; messages go to stderr. Stop with Ctrl-C (exit code 0).`;
const EXAMPLES = [
  "tera-cdc tail --mqtt-url mqtt://broker:1883",
  "tera-cdc tail --mqtt-url mqtt://broker:1883 --model device --op update",
  "tera-cdc tail --mqtt-url mqtt://broker:1883 --json | jq .object",
  "tera-cdc tail --redis-url redis://redis:6379 --model service",
];

export async function tailCommand(argv: string[]): Promise<number> {
  const v = flagsOnlyCommand("tail", TAIL_SETTINGS, argv, { usage: USAGE, examples: EXAMPLES });
  if (!v) return 0;
  if (v["redis-url"] !== undefined && v["mqtt-url"] !== undefined) throw new ConfigError("settings mqtt-url and redis-url are both set: give one of them");
  const redisUrl = v["redis-url"];
  if (redisUrl === undefined) required(TAIL_SETTINGS, v, "mqtt-url");
  const logger = createLogger(v["log-level"]);
  const model = v.model;
  const op = v.op;
  const json = v.json;
  const limit = v.count;

  let printed = 0;
  let finish: () => void = () => {};
  const finished = new Promise<void>((resolve) => {
    finish = resolve;
  });
  const onMessage = (messageTopic: string, payload: Buffer, properties: Record<string, string | string[]> | undefined) => {
    if (limit !== undefined && printed >= limit) return;
    let events: TailEvent[];
    try {
      events = decodeTailEvents(messageTopic, payload, properties);
    } catch (error) {
      logger.warn({ topic: messageTopic, bytes: payload.length }, `message skipped: ${(error as Error).message}`);
      return;
    }
    for (const event of events) {
      if ((model && event.model !== model) || (op && event.op !== op)) continue;
      process.stdout.write(`${json ? JSON.stringify(event) : formatTailLine(event)}\n`);
      if (limit !== undefined && ++printed >= limit) {
        finish();
        return;
      }
    }
  };
  const close =
    redisUrl !== undefined ? await subscribeRedis(redisUrl, redisCa(v), v.topic, model, onMessage, logger) : await subscribeMqtt(required(TAIL_SETTINGS, v, "mqtt-url"), v, model, onMessage, logger);
  const onSignal = () => finish();
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  await finished;
  process.off("SIGINT", onSignal);
  process.off("SIGTERM", onSignal);
  await close();
  return 0;
}

type OnMessage = (topic: string, payload: Buffer, properties: Record<string, string | string[]> | undefined) => void;

async function subscribeMqtt(url: string, v: MqttCredentialSettings & { readonly topic?: string | undefined }, model: string | undefined, onMessage: OnMessage, logger: Logger): Promise<() => Promise<void>> {
  let topic = v.topic;
  if (!topic) {
    try {
      topic = model ? toMqttTopic(`${DATABASE_EVENTS_TOPIC_PREFIX}.${model}`) : `${toMqttTopic(DATABASE_EVENTS_TOPIC_PREFIX)}/#`;
    } catch (error) {
      throw new ConfigError(`setting model: ${(error as Error).message}`);
    }
  }
  // Connected once, mqtt.js reconnects (and subscribes again) by itself.
  const { client, protocolVersion } = await connectBroker(url, mqttCredentials(v), { clean: true, reconnectPeriod: RECONNECT_STEADY_MS });
  if (protocolVersion === 4) logger.info("broker does not speak MQTT 5; subscribing with MQTT 3.1.1 (no lsn or seq)");
  client.on("offline", () => logger.warn("broker connection lost; reconnecting"));
  client.on("error", (error) => logger.warn(`broker error: ${error.message}`));
  client.on("message", (messageTopic, payload, packet) => onMessage(messageTopic, payload, packet.properties?.userProperties));
  await client.subscribeAsync(topic, { qos: 1 });
  logger.info({ broker: redactUrl(url), topic, mqtt5: protocolVersion === 5 }, "subscribed");
  return async () => {
    await client.endAsync();
  };
}

/** PSUBSCRIBE on OpenTera's dotted channels, as its own services do. */
async function subscribeRedis(url: string, ca: Buffer | undefined, pattern: string | undefined, model: string | undefined, onMessage: OnMessage, logger: Logger): Promise<() => Promise<void>> {
  const channel = pattern ?? (model ? `${DATABASE_EVENTS_TOPIC_PREFIX}.${model}` : `${DATABASE_EVENTS_TOPIC_PREFIX}.*`);
  const client = createClient(redisClientOptions({ url, ...(ca ? { ca } : {}), reconnectDelayMs: (retries) => Math.min(500 * 2 ** Math.min(retries, 6), 30_000) }));
  client.on("error", (error: Error) => logger.warn(`redis error: ${error.message}`));
  await client.connect();
  await client.pSubscribe(channel, (payload: Buffer, from: Buffer) => onMessage(from.toString(), payload, undefined), true);
  logger.info({ redis: redactUrl(url), pattern: channel }, "subscribed");
  return async () => {
    client.destroy();
  };
}
