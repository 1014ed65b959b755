import { describe, expect, it } from "vitest";
import {
  DATABASE_EVENTS_TOPIC_PREFIX,
  databaseEventTopic,
  fromMqttTopic,
  type LogTopicLevel,
  logTopic,
  moduleEventsTopic,
  moduleMessagesTopic,
  moduleRpcTopic,
  serviceEventsTopic,
  serviceMessagesTopic,
  serviceRpcTopic,
  toMqttTopic,
  websocketEventsTopic,
} from "./support/imports.js";

describe("OpenTera topics", () => {
  it("builds the topic forms of the spec", () => {
    expect(DATABASE_EVENTS_TOPIC_PREFIX).toBe("module.TeraServer.DatabaseModule.events");
    expect(databaseEventTopic("session_type")).toBe("module.TeraServer.DatabaseModule.events.session_type");
    expect(moduleMessagesTopic("TeraServer")).toBe("module.TeraServer.messages");
    expect(moduleEventsTopic("TeraServer")).toBe("module.TeraServer.events");
    expect(moduleRpcTopic("TeraServer")).toBe("module.TeraServer.rpc");
    expect(serviceMessagesTopic("VideoRehabService")).toBe("service.VideoRehabService.messages");
    expect(serviceEventsTopic("VideoRehabService")).toBe("service.VideoRehabService.events");
    expect(serviceRpcTopic("VideoRehabService")).toBe("service.VideoRehabService.rpc");
    const uuid = "2b0f1a7c-3d4e-4f50-8a6b-7c8d9e0f1a2b";
    expect(websocketEventsTopic("user", uuid)).toBe(`websocket.user.${uuid}.events`);
    expect(websocketEventsTopic("device", uuid)).toBe(`websocket.device.${uuid}.events`);
    expect(websocketEventsTopic("participant", uuid)).toBe(`websocket.participant.${uuid}.events`);
    const levels: LogTopicLevel[] = ["trace", "debug", "info", "warning", "critical", "error", "fatal"];
    expect(levels.map(logTopic)).toEqual(levels.map((level) => `log.${level}`));
  });

  it("maps dotted topics to MQTT levels and back", () => {
    const dotted = databaseEventTopic("device");
    expect(toMqttTopic(dotted)).toBe("module/TeraServer/DatabaseModule/events/device");
    expect(fromMqttTopic("module/TeraServer/DatabaseModule/events/device")).toBe(dotted);
    expect(fromMqttTopic(toMqttTopic("log.info"))).toBe("log.info");
  });

  it("refuses components that would make the mapping ambiguous or hit MQTT wildcards", () => {
    for (const model of ["", "a.b", "a/b", "+", "dev#"]) {
      expect(() => databaseEventTopic(model)).toThrow(/invalid topic model/);
    }
    expect(() => serviceRpcTopic("key/with/slash")).toThrow(/contains "\/"/);
    expect(() => websocketEventsTopic("robot" as "user", "x")).toThrow(/websocket client kind/);
    expect(() => logTopic("verbose" as LogTopicLevel)).toThrow(/log level/);
    for (const topic of ["", "a..b", ".a", "a.", "a/b.c", "a.+.b", "a.#"]) {
      expect(() => toMqttTopic(topic), topic).toThrow(Error);
    }
    for (const topic of ["", "a//b", "/a", "a/", "a.b/c", "a/+/b", "a/#"]) {
      expect(() => fromMqttTopic(topic), topic).toThrow(Error);
    }
  });
});
