// What a caller sees for bytes that are not the message asked for.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import {
  DatabaseEvent,
  DatabaseEvent_EventType,
  decodeMessage,
  decodeRPCMessage,
  decodeTeraEvent,
  decodeTeraMessage,
  encodeMessage,
  KNOWN_MESSAGE_NAMES,
  type KnownMessageName,
  MessageDecodeError,
  StopSessionEvent,
  TeraEvent,
  teraEvent,
} from "./support/imports.js";

const fixtureDir = join(import.meta.dirname, "..", "fixtures", "messages");
const fixture = (name: string) => new Uint8Array(readFileSync(join(fixtureDir, `${name}.bin`)));
const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString("hex");

function errorOf(result: ReturnType<typeof decodeMessage>): MessageDecodeError {
  if (result.ok) throw new Error("expected a decode error");
  return result.error;
}

const databaseEvent: DatabaseEvent = {
  $type: DatabaseEvent.$type,
  type: DatabaseEvent_EventType.DB_CREATE,
  objectType: "device",
  objectValue: '{"id_device":1}',
};

describe("decodeMessage refuses what it cannot fully read", () => {
  it.each(KNOWN_MESSAGE_NAMES)("%s: every prefix of the fixture is a typed error or exactly a shorter valid message", (name) => {
    const bytes = fixture(name === "Value" ? "Value-string" : name);
    for (let length = 0; length < bytes.length; length++) {
      const prefix = bytes.subarray(0, length);
      const result = decodeMessage(name, prefix);
      if (result.ok) {
        expect(hex(encodeMessage(result.message))).toBe(hex(prefix));
      } else {
        expect(["truncated", "missing-field"]).toContain(result.error.kind);
      }
    }
  });

  it("says truncated, with where, when the bytes stop inside a field", () => {
    const bytes = encodeMessage(teraEvent({ topic: "t", time: 1, events: [databaseEvent] }));
    const error = errorOf(decodeTeraEvent(bytes.subarray(0, bytes.length - 3)));
    expect(error.kind).toBe("truncated");
    expect(error.messageName).toBe("TeraEvent");
    expect(error.fieldPath).toBe("events[0]");
    expect(error.message).toMatch(/^cannot decode TeraEvent: truncated in events\[0\] at byte \d+: /);
  });

  it("says wrong-type for the bytes of another message whose fields clash", () => {
    const error = errorOf(decodeTeraEvent(encodeMessage(databaseEvent)));
    expect(error.kind).toBe("wrong-type");
    expect(error.fieldPath).toBe("header");
  });

  it("says missing-field for a TeraEvent without header and a TeraMessage without message", () => {
    const headerless = encodeMessage({ $type: TeraEvent.$type, header: undefined, events: [] });
    expect(errorOf(decodeTeraEvent(headerless)).kind).toBe("missing-field");
    expect(errorOf(decodeTeraMessage(new Uint8Array(0))).kind).toBe("missing-field");
  });

  it("says missing-field for a packed event without type_url", () => {
    // header {version 1}, events { value: 08 01 }
    const bytes = Uint8Array.from([0x0a, 0x02, 0x08, 0x01, 0x12, 0x04, 0x12, 0x02, 0x08, 0x01]);
    const error = errorOf(decodeTeraEvent(bytes));
    expect(error.kind).toBe("missing-field");
    expect(error.fieldPath).toBe("events[0].type_url");
  });

  it("says malformed for invalid UTF-8 in a string field, as Google's runtimes do", () => {
    const error = errorOf(decodeMessage("StopSessionEvent", Uint8Array.from([0x0a, 0x02, 0xc3, 0x28])));
    expect(error.kind).toBe("malformed");
    expect(error.fieldPath).toBe("session_uuid");
  });

  it("says malformed for groups and impossible wire types", () => {
    expect(errorOf(decodeRPCMessage(Uint8Array.from([0x0b, 0x0c]))).kind).toBe("malformed"); // group start
    expect(errorOf(decodeRPCMessage(Uint8Array.from([0x0e]))).kind).toBe("malformed"); // wire type 6
    expect(errorOf(decodeRPCMessage(Uint8Array.from([0x00]))).kind).toBe("malformed"); // field 0
  });

  it("refuses unknown field numbers by default and skips them when asked", () => {
    const stop = encodeMessage({ $type: StopSessionEvent.$type, sessionUuid: "s", serviceUuid: "v" });
    const withExtra = Uint8Array.from([...stop, 0x48, 0x2a]); // field 9, varint 42
    expect(errorOf(decodeMessage("StopSessionEvent", withExtra)).kind).toBe("unknown-field");
    const skipped = decodeMessage("StopSessionEvent", withExtra, { unknownFields: "skip" });
    expect(skipped.ok && skipped.message.sessionUuid).toBe("s");
  });

  it("says unknown-message for a name that is not ours", () => {
    const result = decodeMessage("Nope" as KnownMessageName, new Uint8Array(0));
    expect(errorOf(result).kind).toBe("unknown-message");
  });

  it("refuses a wrapper's bytes as any other wrapper, and RPCMessage or DatabaseEvent as a wrapper", () => {
    const wrappers = ["TeraEvent", "TeraMessage", "TeraModuleMessage"] as const;
    for (const as of wrappers) {
      for (const from of [...wrappers, "RPCMessage", "DatabaseEvent", "LoginEvent"]) {
        if (from === as) continue;
        expect(decodeMessage(as, fixture(from)).ok, `${from} as ${as}`).toBe(false);
      }
    }
  });

  it("accepts another message's bytes only when its fields have the same numbers and wire types", () => {
    // Protobuf cannot tell these apart; list them so a schema change that adds one is noticed.
    const accepted: string[] = [];
    const fixtures = KNOWN_MESSAGE_NAMES.map((name) => [name, fixture(name === "Value" ? "Value-string" : name)] as const);
    for (const [from, bytes] of fixtures) {
      for (const as of KNOWN_MESSAGE_NAMES) {
        if (as !== from && decodeMessage(as, bytes).ok) accepted.push(`${from} as ${as}`);
      }
    }
    expect(accepted.sort()).toMatchInlineSnapshot(`
      [
        "DeviceEvent as ParticipantEvent",
        "LeaveSessionEvent as JoinSessionEvent",
        "StopSessionEvent as JoinSessionEvent",
        "StopSessionEvent as JoinSessionReplyEvent",
        "StopSessionEvent as LeaveSessionEvent",
        "StopSessionEvent as RPCMessage",
        "UserEvent as DeviceEvent",
        "UserEvent as ParticipantEvent",
        "Value as JoinSessionEvent",
        "Value as LoginEvent",
      ]
    `);
  });
});
