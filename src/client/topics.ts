import { DATABASE_EVENTS_TOPIC_PREFIX, databaseEventTopic, toMqttTopic } from "../messages/index.js";

/** What the topic filters are made of (the same fields of SubscribeOptions). */
export interface TopicChoice {
  readonly models?: readonly string[];
  readonly topics?: readonly string[];
  readonly group?: string;
}

/** The MQTT topic filters for the options: the given topics, one per model, or every model; shared when a group is given. */
export function topicFilters(options: TopicChoice): string[] {
  const models = options.models ?? [];
  const topics = options.topics?.length ? [...options.topics] : models.length === 0 ? [`${toMqttTopic(DATABASE_EVENTS_TOPIC_PREFIX)}/+`] : models.map((model) => toMqttTopic(databaseEventTopic(model)));
  if (options.group === undefined) return topics;
  if (options.group === "" || /[/+#]/.test(options.group)) {
    throw new Error(`group ${JSON.stringify(options.group)} is not a valid shared subscription name: use letters, digits, - or _`);
  }
  return topics.map((topic) => `$share/${options.group}/${topic}`);
}
