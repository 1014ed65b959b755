// encodeDatabaseTeraEvent must give exactly the bytes of the generic path.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  DatabaseEvent,
  DatabaseEvent_EventType,
  decodeTeraEvent,
  encodeDatabaseTeraEvent,
  encodeMessage,
  teraEvent,
  unpackAny,
} from "./support/imports.js";

type Fields = { type: DatabaseEvent_EventType; objectType: string; objectValue: string };
const generic = (topic: string, time: number, events: readonly Fields[]) =>
  encodeMessage(teraEvent({ topic, time, events: events.map((e) => ({ $type: DatabaseEvent.$type, ...e })) }));
const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString("hex");

// Strings with every UTF-8 length class, lone surrogates included (both paths write U+FFFD).
const text = fc.oneof(
  fc.string({ maxLength: 30 }),
  fc.string({ unit: "binary", maxLength: 30 }),
  fc.string({ unit: fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c)), maxLength: 20 }),
  fc.string({ unit: "grapheme-ascii", minLength: 100, maxLength: 400 }),
);
const fields = fc.record({
  type: fc.oneof(fc.constantFrom(0, 1, 2, 3), fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 })),
  objectType: text,
  objectValue: text,
});
const time = fc.oneof(fc.double(), fc.constantFrom(0, -0, 1712345678.123456, Number.NaN, Number.MAX_VALUE));

describe("encodeDatabaseTeraEvent", () => {
  it("is byte for byte the generic encodeMessage(teraEvent(...))", () => {
    fc.assert(
      fc.property(text, time, fc.array(fields, { maxLength: 6 }), (topic, t, events) => {
        expect(hex(encodeDatabaseTeraEvent(topic, t, events))).toBe(hex(generic(topic, t, events)));
      }),
      { numRuns: 2000 },
    );
  });

  it("is byte for byte the generic path for a row too big for one-byte lengths", () => {
    const row = { type: DatabaseEvent_EventType.DB_UPDATE, objectType: "session", objectValue: `{"x":"${"é".repeat(70_000)}"}` };
    const topic = "module.TeraServer.DatabaseModule.events.session";
    expect(hex(encodeDatabaseTeraEvent(topic, 5, [row]))).toBe(hex(generic(topic, 5, [row])));
  });

  it("decodes to a TeraEvent with the header and the DatabaseEvents given", () => {
    const bytes = encodeDatabaseTeraEvent("module.TeraServer.DatabaseModule.events.device", 1712345678.5, [
      { type: DatabaseEvent_EventType.DB_DELETE, objectType: "device", objectValue: '{"id_device":9}' },
    ]);
    const decoded = decodeTeraEvent(bytes);
    if (!decoded.ok) throw decoded.error;
    expect(decoded.message.header).toMatchObject({ version: 1, time: 1712345678.5, topic: "module.TeraServer.DatabaseModule.events.device" });
    expect(decoded.message.events.map((any) => unpackAny(any))).toEqual([
      {
        type: "DatabaseEvent",
        message: { $type: DatabaseEvent.$type, type: DatabaseEvent_EventType.DB_DELETE, objectType: "device", objectValue: '{"id_device":9}' },
      },
    ]);
  });

  it("refuses a type that is not an int32, as the generic path does", () => {
    const bad = [{ type: 1.5 as DatabaseEvent_EventType, objectType: "d", objectValue: "{}" }];
    expect(() => encodeDatabaseTeraEvent("t", 1, bad)).toThrow(RangeError);
    expect(() => generic("t", 1, bad)).toThrow();
  });
});
