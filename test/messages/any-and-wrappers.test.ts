import { describe, expect, it } from "vitest";
import {
  type Any,
  DatabaseEvent,
  DatabaseEvent_EventType,
  decodeTeraEvent,
  encodeMessage,
  LogEvent,
  LogEvent_LogLevel,
  packAny,
  RPCMessage,
  teraEvent,
  teraMessage,
  teraModuleMessage,
  unpackAny,
  Value,
} from "./support/imports.js";

const created: DatabaseEvent = {
  $type: DatabaseEvent.$type,
  type: DatabaseEvent_EventType.DB_CREATE,
  objectType: "device",
  objectValue: '{"id_device":3,"device_name":"Tablette"}',
};
const log: LogEvent = { $type: LogEvent.$type, level: LogEvent_LogLevel.LOGLEVEL_INFO, timestamp: 1.5, sender: "s", message: "m" };

describe("packAny / unpackAny", () => {
  it("packs with type_url type.googleapis.com/opentera.protobuf.<Name> and the message's bytes", () => {
    const any = packAny(created);
    expect(any.typeUrl).toBe("type.googleapis.com/opentera.protobuf.DatabaseEvent");
    expect(any.value).toEqual(encodeMessage(created));
    expect(packAny({ $type: Value.$type, argValue: { $case: "boolValue", boolValue: true } }).typeUrl).toBe(
      "type.googleapis.com/opentera.protobuf.Value",
    );
  });

  it("unpacks to a result discriminated by type", () => {
    const unpacked = unpackAny(packAny(created));
    expect(unpacked.type).toBe("DatabaseEvent");
    if (unpacked.type === "DatabaseEvent") expect(unpacked.message).toEqual(created);
    const wrapped = unpackAny(packAny(teraMessage(log)));
    expect(wrapped.type).toBe("TeraMessage");
  });

  it("reads the type after the last slash, whatever the prefix", () => {
    const any: Any = { ...packAny(log), typeUrl: "example.org/x/opentera.protobuf.LogEvent" };
    expect(unpackAny(any)).toEqual({ type: "LogEvent", message: log });
  });

  it("gives unknown, with the type_url and raw value, for foreign and nested types", () => {
    const value = Uint8Array.of(1, 2, 3);
    for (const typeUrl of [
      "type.googleapis.com/google.protobuf.StringValue",
      "type.googleapis.com/opentera.protobuf.TeraEvent.Header",
      "type.googleapis.com/opentera.protobuf.ServerCommand",
      "",
    ]) {
      expect(unpackAny({ $type: "google.protobuf.Any", typeUrl, value })).toEqual({ type: "unknown", typeUrl, value });
    }
  });

  it("gives invalid, with a typed error, when a known type's value does not decode", () => {
    const any: Any = { $type: "google.protobuf.Any", typeUrl: "type.googleapis.com/opentera.protobuf.DatabaseEvent", value: Uint8Array.of(0x12, 0x05, 0x61) };
    const unpacked = unpackAny(any);
    expect(unpacked.type).toBe("invalid");
    if (unpacked.type === "invalid") {
      expect(unpacked.typeUrl).toBe(any.typeUrl);
      expect(unpacked.error.kind).toBe("truncated");
    }
  });
});

describe("wrapper builders", () => {
  it("teraEvent: header version 1, time, topic; events packed in order, Any passed as is", () => {
    const foreign: Any = { $type: "google.protobuf.Any", typeUrl: "type.googleapis.com/other.Thing", value: Uint8Array.of(8, 1) };
    const event = teraEvent({ topic: "module.TeraServer.DatabaseModule.events.device", time: 1712345678.25, events: [created, foreign, log] });
    expect(event.header).toEqual({
      $type: "opentera.protobuf.TeraEvent.Header",
      version: 1,
      time: 1712345678.25,
      topic: "module.TeraServer.DatabaseModule.events.device",
    });
    expect(event.events.map((any) => any.typeUrl)).toEqual([
      "type.googleapis.com/opentera.protobuf.DatabaseEvent",
      "type.googleapis.com/other.Thing",
      "type.googleapis.com/opentera.protobuf.LogEvent",
    ]);
    const decoded = decodeTeraEvent(encodeMessage(event));
    expect(decoded.ok && decoded.message).toEqual(event);
  });

  it("teraEvent: a Date gives seconds with the millisecond fraction; no time means now", () => {
    expect(teraEvent({ topic: "t", time: new Date(1712345678123), events: [] }).header?.time).toBe(1712345678.123);
    const before = Date.now() / 1000;
    const time = teraEvent({ topic: "t", events: [] }).header?.time ?? 0;
    expect(time).toBeGreaterThanOrEqual(before);
    expect(time).toBeLessThanOrEqual(Date.now() / 1000);
    expect(Number.isInteger(time * 1000)).toBe(true);
  });

  it("teraMessage packs one message", () => {
    expect(teraMessage(log)).toEqual({ $type: "opentera.protobuf.TeraMessage", message: packAny(log) });
  });

  it("teraModuleMessage: head version 1, time, seq, source, dest; data packed", () => {
    const rpc: RPCMessage = { $type: RPCMessage.$type, method: "m", replyTo: "r", id: 7n, timestamp: 2, args: [] };
    const message = teraModuleMessage({ seq: 42, source: "module.A", dest: "service.B", time: 3.5, data: [rpc] });
    expect(message.head).toEqual({
      $type: "opentera.protobuf.TeraModuleMessage.Header",
      version: 1,
      time: 3.5,
      seq: 42,
      source: "module.A",
      dest: "service.B",
    });
    expect(message.data.map((any) => unpackAny(any))).toEqual([{ type: "RPCMessage", message: rpc }]);
  });
});
