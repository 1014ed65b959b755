/**
 * src/mqtt/publish-packet.ts against the oracle, mqtt-packet's own `generate()` (what mqtt.js
 * would have sent): random topics, payloads and properties, non-ASCII and large ones included,
 * every length at the variable byte integer's boundaries, and sequences of packets that share
 * properties (the encoder's cache) as a transaction's changes do.
 */
import fc from "fast-check";
import { generate, type IPublishPacket } from "mqtt-packet";
import { describe, expect, it } from "vitest";
import { PublishEncoder, type PublishPacket, varintBytes } from "../../src/mqtt/publish-packet.js";

const oracle = (packet: PublishPacket, protocolVersion: number): Buffer => generate(packet as unknown as IPublishPacket, { protocolVersion });
const ours = (encoder: PublishEncoder, packet: PublishPacket, protocolVersion: number): Buffer | null => {
  const chunks = encoder.encode(packet, protocolVersion);
  return chunks === null ? null : Buffer.concat(chunks);
};
/** Buffer.equals, not toEqual: vitest compares a buffer byte by byte as an array, far too slowly for megabytes. */
const expectSameBytes = (actual: Buffer | null, expected: Buffer) => {
  if (actual === null || !actual.equals(expected)) {
    expect(actual === null ? null : actual.subarray(0, 200).toString("hex"), `${actual?.length} bytes, expected ${expected.length}`).toBe(expected.subarray(0, 200).toString("hex"));
    expect(actual).toEqual(expected);
  }
};

const text = fc.oneof(fc.string({ maxLength: 40 }), fc.string({ unit: "grapheme", maxLength: 20 }), fc.constantFrom("", "é", "日本", "😀", "\u0000", "a\ud800b"));
const properties = fc.option(
  fc.record(
    {
      contentType: fc.constantFrom("application/x-protobuf", "text/plain; charset=ütf-8"),
      userProperties: fc.dictionary(fc.oneof(text, fc.constantFrom("lsn", "xid", "seq", "op")), text, { minKeys: 1, maxKeys: 9 }),
    },
    { requiredKeys: ["userProperties"] },
  ),
  { nil: undefined },
);
const packet = fc.record({
  topic: fc.oneof(text, fc.constant("module/TeraServer/DatabaseModule/events/device")),
  payload: fc.oneof(fc.uint8Array({ maxLength: 300 }).map((a) => Buffer.from(a)), fc.integer({ min: 16_000, max: 70_000 }).map((n) => Buffer.alloc(n, 7))),
  qos: fc.constantFrom(0, 1, 2),
  dup: fc.boolean(),
  retain: fc.boolean(),
  messageId: fc.integer({ min: 1, max: 65_535 }),
  properties,
});

describe("PUBLISH packets encoded as mqtt-packet encodes them", () => {
  it("random packets, alone and in sequences sharing properties, at MQTT 5 and 3.1.1", () => {
    fc.assert(
      fc.property(fc.array(packet, { minLength: 1, maxLength: 6 }), fc.constantFrom(4, 5), (packets, version) => {
        const encoder = new PublishEncoder();
        // Each packet twice, then with one property changed: the cache's hit, miss and refill.
        for (const p of packets) {
          const first = { cmd: "publish" as const, ...p };
          for (const candidate of [first, first, { ...first, properties: p.properties && { ...p.properties, userProperties: { ...p.properties.userProperties, seq: `${Math.random()}` } } }]) {
            const expected = oracle(candidate, version);
            expectSameBytes(ours(encoder, candidate, version), expected);
          }
        }
      }),
      { numRuns: 400 },
    );
  });

  it("remaining and property lengths at every variable byte integer boundary", () => {
    const encoder = new PublishEncoder();
    const base = { cmd: "publish" as const, topic: "t/ü", qos: 1, messageId: 513, dup: false, retain: false };
    for (const boundary of [127, 128, 16_383, 16_384, 2_097_151, 2_097_152]) {
      // The remaining length lands on the boundary and either side of it.
      for (const delta of [-1, 0, 1]) {
        const withProperties = { ...base, properties: { contentType: "application/x-protobuf", userProperties: { lsn: "0/1A2B3C", seq: "7" } } };
        const overhead = oracle({ ...withProperties, payload: Buffer.alloc(0) }, 5).length;
        const fixedHeader = 1 + varintBytes(overhead - 2);
        const payloadLength = boundary + delta - (overhead - fixedHeader);
        if (payloadLength < 0) continue;
        const p = { ...withProperties, payload: Buffer.alloc(payloadLength, 0xa5) };
        expectSameBytes(ours(encoder, p, 5), oracle(p, 5));
        expectSameBytes(ours(encoder, p, 4), oracle(p, 4));
      }
      // The property block's own length on the boundary (one long value), where it fits a string.
      for (const delta of [-1, 0, 1]) {
        const valueLength = boundary + delta - (5 + "v".length);
        if (valueLength < 0 || valueLength > 65_535) continue;
        const p = { ...base, payload: Buffer.from("x"), properties: { userProperties: { v: "é".repeat(Math.floor(valueLength / 2)) + "a".repeat(valueLength % 2) } } };
        expectSameBytes(ours(encoder, p, 5), oracle(p, 5));
      }
    }
  });

  it("leaves to mqtt-packet what it does not encode", () => {
    const encoder = new PublishEncoder();
    const base = { cmd: "publish" as const, topic: "t", payload: Buffer.from("x"), qos: 1, messageId: 1 };
    expect(encoder.encode({ ...base, properties: { topicAlias: 3 } }, 5)).toBeNull();
    expect(encoder.encode({ ...base, properties: { userProperties: { n: 1 } } }, 5)).toBeNull();
    expect(encoder.encode({ ...base, properties: { userProperties: {} } }, 5)).toBeNull();
    expect(encoder.encode({ ...base, properties: { userProperties: { a: "b" }, contentType: "c" } }, 5)).toBeNull();
    expect(encoder.encode({ ...base, messageId: undefined }, 5)).toBeNull();
    expect(encoder.encode({ ...base, topic: "x".repeat(70_000) }, 5)).toBeNull();
    expect(encoder.encode({ ...base, properties: { userProperties: { k: "v".repeat(70_000) } } }, 5)).toBeNull();
  });
});
