/**
 * OpenTera topic names (dotted, as OpenTera uses on Redis and puts in TeraEvent.header.topic) and
 * their MQTT form (the same levels separated by "/"). A component that is empty or contains ".",
 * "/", "+" or "#" would make the dotted <-> MQTT mapping ambiguous or hit MQTT wildcards, so every
 * builder and converter here throws an Error naming it instead.
 */

export const DATABASE_EVENTS_TOPIC_PREFIX = "module.TeraServer.DatabaseModule.events";

export type WebsocketClientKind = "user" | "device" | "participant";
export type LogTopicLevel = "trace" | "debug" | "info" | "warning" | "critical" | "error" | "fatal";

const LOG_LEVELS: ReadonlySet<string> = new Set(["trace", "debug", "info", "warning", "critical", "error", "fatal"]);
const WEBSOCKET_KINDS: ReadonlySet<string> = new Set(["user", "device", "participant"]);
const FORBIDDEN = /[./+#]/;

function checkComponent(component: string, what: string): string {
  if (typeof component !== "string" || component === "") {
    throw new Error(`invalid topic ${what}: must be a non-empty string`);
  }
  const bad = FORBIDDEN.exec(component);
  if (bad !== null) {
    throw new Error(`invalid topic ${what} ${JSON.stringify(component)}: contains ${JSON.stringify(bad[0])}`);
  }
  return component;
}

/** module.TeraServer.DatabaseModule.events.<model>, e.g. model "device" (see spec: model naming). */
export function databaseEventTopic(model: string): string {
  return `${DATABASE_EVENTS_TOPIC_PREFIX}.${checkComponent(model, "model")}`;
}

export function moduleMessagesTopic(moduleName: string): string {
  return `module.${checkComponent(moduleName, "module name")}.messages`;
}

export function moduleEventsTopic(moduleName: string): string {
  return `module.${checkComponent(moduleName, "module name")}.events`;
}

export function moduleRpcTopic(moduleName: string): string {
  return `module.${checkComponent(moduleName, "module name")}.rpc`;
}

export function serviceMessagesTopic(serviceKey: string): string {
  return `service.${checkComponent(serviceKey, "service key")}.messages`;
}

export function serviceEventsTopic(serviceKey: string): string {
  return `service.${checkComponent(serviceKey, "service key")}.events`;
}

export function serviceRpcTopic(serviceKey: string): string {
  return `service.${checkComponent(serviceKey, "service key")}.rpc`;
}

/** websocket.<kind>.<uuid>.events: events bound to one connected client. */
export function websocketEventsTopic(kind: WebsocketClientKind, uuid: string): string {
  if (!WEBSOCKET_KINDS.has(kind)) throw new Error(`invalid websocket client kind ${JSON.stringify(kind)}: expected user, device or participant`);
  return `websocket.${kind}.${checkComponent(uuid, "uuid")}.events`;
}

export function logTopic(level: LogTopicLevel): string {
  if (!LOG_LEVELS.has(level)) throw new Error(`invalid log level ${JSON.stringify(level)}: expected one of ${[...LOG_LEVELS].join(", ")}`);
  return `log.${level}`;
}

function convert(topic: string, from: "." | "/", to: "." | "/"): string {
  if (typeof topic !== "string" || topic === "") throw new Error("invalid topic: must be a non-empty string");
  return topic
    .split(from)
    .map((component, index) => checkComponent(component, `level ${index} of ${JSON.stringify(topic)}`))
    .join(to);
}

/** "module.TeraServer.DatabaseModule.events.device" -> "module/TeraServer/DatabaseModule/events/device". */
export function toMqttTopic(dottedTopic: string): string {
  return convert(dottedTopic, ".", "/");
}

/** The inverse of toMqttTopic. Wildcard filters ("+", "#") are not topics and are refused. */
export function fromMqttTopic(mqttTopic: string): string {
  return convert(mqttTopic, "/", ".");
}
