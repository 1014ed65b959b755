/**
 * bench/subscriber.ts, the bench's lean MQTT 5 subscriber, against the oracle mqtt-packet:
 * PUBLISH packets written by its generate() (random topics, payloads, QoS 0 and 1, every property
 * a PUBLISH can carry) and cut into random TCP chunks, lengths at the variable byte integer's
 * boundaries, and the PUBACKs it answers read back by mqtt-packet's parser. Then against a real
 * Mosquitto and an mqtt.js publisher, for its CONNECT, SUBSCRIBE and acknowledgements.
 */
import fc from "fast-check";
import mqtt from "mqtt";
import { generate, type IPublishPacket, parser as mqttParser, type Packet } from "mqtt-packet";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { commitTimeMs, Subscriber, TOPIC_PREFIX } from "../../bench/subscriber.js";
import { DatabaseEvent, DatabaseEvent_EventType, encodeMessage, teraEvent } from "../../src/messages/index.js";
import { type Broker, startBroker } from "../harness/broker.js";

type UserProperties = Record<string, string>;

/** What the old mqtt.js subscriber counted for a message: a marker holds none, a batch names its count. */
const eventsOf = (properties: UserProperties): number => (properties["snapshot-marker"] ? 0 : properties.count ? Number(properties.count) : 1);

/** The PUBACKs a subscriber wrote, as mqtt-packet parses them. */
function parsePackets(bytes: Buffer): Packet[] {
  const packets: Packet[] = [];
  const p = mqttParser({ protocolVersion: 5 });
  p.on("packet", (packet) => packets.push(packet));
  p.on("error", (error) => {
    throw error;
  });
  p.parse(bytes);
  return packets;
}

/** A subscriber fed `chunks`, with what it wrote back. */
function feed(chunks: Buffer[], options: { onMessage?: boolean } = {}) {
  const written: Buffer[] = [];
  const subscriber = new Subscriber((bytes) => written.push(bytes));
  const seen: { payload: Buffer; properties: UserProperties }[] = [];
  if (options.onMessage) subscriber.onMessage = (payload, properties) => seen.push({ payload: Buffer.from(payload), properties });
  for (const chunk of chunks) subscriber.receive(chunk);
  return { subscriber, seen, acks: parsePackets(Buffer.concat(written)) };
}

/** `bytes` cut at `cuts` (positions taken modulo its length). */
function cut(bytes: Buffer, cuts: number[]): Buffer[] {
  const at = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
  const chunks: Buffer[] = [];
  let from = 0;
  for (const c of [...at, bytes.length]) {
    chunks.push(bytes.subarray(from, c));
    from = c;
  }
  return chunks.filter((c) => c.length > 0);
}

function expectSameBytes(actual: Buffer, expected: Buffer) {
  if (!actual.equals(expected)) expect(`${actual.length} bytes ${actual.subarray(0, 100).toString("hex")}`).toBe(`${expected.length} bytes ${expected.subarray(0, 100).toString("hex")}`);
}

const text = fc.oneof(fc.string({ maxLength: 30 }), fc.string({ unit: "grapheme", maxLength: 10 }), fc.constantFrom("", "é", "日本", "😀", "\u0000"));
const key = fc.oneof(text, fc.constantFrom("count", "snapshot-marker", "commit-time", "counts", "coun", "lsn", "sig")).filter((k) => k !== "__proto__");
const value = fc.oneof(text, fc.nat({ max: 100_000 }).map(String), fc.constantFrom("2026-12-07T03:41:07.123456+00:00", "start", "end"));
// mqtt-packet writes nothing for an empty userProperties (a message has none, or at least one).
const userProperties = fc.dictionary(key, value, { minKeys: 1, maxKeys: 9 }).map((d) => {
  // tera-cdc's count is a whole number; anything else in `count` is outside what the bench reads.
  const properties: UserProperties = { ...d };
  if (properties.count !== undefined && !/^\d+$/.test(properties.count)) properties.count = "3";
  return properties;
});
const publish: fc.Arbitrary<Publish> = fc.record({
  topic: fc.oneof(text.filter((t) => !t.startsWith(TOPIC_PREFIX)), fc.constant("bench/bare/200")),
  payload: fc.oneof(fc.uint8Array({ maxLength: 300 }).map((a) => Buffer.from(a)), fc.integer({ min: 16_000, max: 20_000 }).map((n) => Buffer.alloc(n, 7))),
  qos: fc.constantFrom<0 | 1>(0, 1),
  dup: fc.boolean(),
  retain: fc.boolean(),
  messageId: fc.integer({ min: 1, max: 65_535 }),
  properties: fc.record(
    {
      payloadFormatIndicator: fc.boolean(),
      messageExpiryInterval: fc.nat(),
      topicAlias: fc.integer({ min: 1, max: 65_535 }),
      responseTopic: text,
      correlationData: fc.uint8Array({ maxLength: 40 }).map((a) => Buffer.from(a)),
      userProperties,
      subscriptionIdentifier: fc.integer({ min: 1, max: 268_435_455 }),
      contentType: fc.constantFrom("application/x-protobuf", "text/plain; charset=ütf-8"),
    },
    { requiredKeys: [] },
  ),
});
interface Publish {
  topic: string;
  payload: Buffer;
  qos: 0 | 1;
  dup: boolean;
  retain: boolean;
  messageId: number;
  properties: { userProperties?: UserProperties; contentType?: string; [other: string]: unknown };
}

function encode(p: Publish): Buffer {
  const bytes = generate({ cmd: "publish", ...p } as unknown as IPublishPacket, { protocolVersion: 5 });
  if (bytes.length === 0) throw new Error(`mqtt-packet generated nothing for ${JSON.stringify(p).slice(0, 300)}`);
  return bytes;
}

/** Everything the subscriber must have made of `packets`, worked out from the packets themselves. */
function expectRead(packets: Publish[], result: ReturnType<typeof feed>) {
  const { subscriber, acks } = result;
  expect(subscriber.failure).toBeNull();
  const props = (p: Publish): UserProperties => p.properties.userProperties ?? {};
  expect(subscriber.messages).toBe(packets.length);
  expect(subscriber.events).toBe(packets.reduce((sum, p) => sum + eventsOf(props(p)), 0));
  expect(subscriber.payloadBytes).toBe(packets.reduce((sum, p) => sum + p.payload.length, 0));
  expect(subscriber.firstCommitMs).toEqual(commitTimeMs(packets.length > 0 ? props(packets[0]!)["commit-time"] : undefined));
  if (packets.length > 0) {
    const last = packets[packets.length - 1]!;
    expect(subscriber.lastProperties).toEqual(props(last));
    expectSameBytes(subscriber.lastPayload, last.payload);
  }
  expect(acks.map((a) => [a.cmd, (a as { messageId?: number }).messageId, (a as { reasonCode?: number }).reasonCode ?? 0])).toEqual(
    packets.filter((p) => p.qos === 1).map((p) => ["puback", p.messageId, 0]),
  );
}

describe("the bench subscriber reads what mqtt-packet generates", () => {
  it("random PUBLISH sequences with every PUBLISH property, cut into random TCP chunks", () => {
    fc.assert(
      fc.property(fc.array(publish, { maxLength: 8 }), fc.array(fc.nat(), { maxLength: 12 }), fc.boolean(), (packets, cuts, listen) => {
        // A PINGRESP between the PUBLISHes: packets the subscriber does not count are skipped whole.
        const bytes = Buffer.concat([...packets.map(encode), Buffer.from([0xd0, 0x00])]);
        const result = feed(cut(bytes, cuts), { onMessage: listen });
        expectRead(packets, result);
        if (listen) {
          expect(result.seen.map((s) => s.properties)).toEqual(packets.map((p) => p.properties.userProperties ?? {}));
          result.seen.forEach((s, i) => expectSameBytes(s.payload, packets[i]!.payload));
        }
      }),
      { numRuns: 300 },
    );
  });

  it("one byte at a time", () => {
    const packets: Publish[] = [
      { topic: "a/b", payload: Buffer.from("hello"), qos: 1, dup: false, retain: false, messageId: 300, properties: { userProperties: { count: "12", "commit-time": "2026-12-07T03:41:07.5+00:00" } } },
      { topic: "a/b", payload: Buffer.alloc(200, 1), qos: 0, dup: false, retain: false, messageId: 1, properties: { userProperties: { "snapshot-marker": "end", count: "4" } } },
      { topic: "a/b", payload: Buffer.alloc(0), qos: 1, dup: true, retain: true, messageId: 65_535, properties: {} },
    ];
    const bytes = Buffer.concat(packets.map(encode));
    expectRead(packets, feed([...bytes].map((b) => Buffer.from([b]))));
    expect(feed([bytes]).subscriber.firstCommitMs).toBe(Date.parse("2026-12-07T03:41:07Z") + 500);
  });

  it("remaining and property lengths at every variable byte integer boundary", () => {
    const base = { topic: "t/ü", qos: 1 as const, dup: false, retain: false, messageId: 513 };
    for (const boundary of [127, 128, 16_383, 16_384, 2_097_151, 2_097_152]) {
      for (const delta of [-1, 0, 1]) {
        // The remaining length on the boundary and either side of it.
        const properties = { contentType: "application/x-protobuf", userProperties: { count: "1", lsn: "0/1A2B3C" } };
        const remainingWithoutPayload = encode({ ...base, payload: Buffer.alloc(0), properties }).readUInt8(1); // under 128: one length byte
        const payloadLength = boundary + delta - remainingWithoutPayload;
        if (payloadLength >= 0) {
          const p = { ...base, payload: Buffer.alloc(payloadLength, 0xa5), properties };
          const varintLength = boundary + delta < 128 ? 1 : boundary + delta < 16_384 ? 2 : boundary + delta < 2_097_152 ? 3 : 4;
          expect(encode(p).length).toBe(1 + varintLength + boundary + delta);
          const bytes = Buffer.concat([encode(p), encode({ ...p, messageId: 514 })]);
          expectRead([p, { ...p, messageId: 514 }], feed(cut(bytes, [1, 2, 3, 4, 5, 4096, 65_536, 65_537, bytes.length - 2])));
        }
        // The property block's own length on the boundary (one long value), where it fits a string.
        const valueLength = boundary + delta - 5 - "v".length;
        if (valueLength >= 0 && valueLength <= 65_535) {
          const p = { ...base, payload: Buffer.from("x"), properties: { userProperties: { v: "é".repeat(Math.floor(valueLength / 2)) + "a".repeat(valueLength % 2) } } };
          const bytes = encode(p);
          expectRead([p], feed(cut(bytes, [3, 7, 8, 9, 10, 11, bytes.length - 1])));
        }
      }
    }
  });

  it("decodes every 500th DatabaseEvent payload and fails on one that is not a TeraEvent of `count` DatabaseEvents", () => {
    const topic = `${TOPIC_PREFIX}bulk`;
    const databaseEvent = (id: number) => ({ $type: DatabaseEvent.$type, type: DatabaseEvent_EventType.DB_CREATE, objectType: "bulk", objectValue: `{"id_bulk":${id}}` });
    const payload = (count: number) => Buffer.from(encodeMessage(teraEvent({ topic, events: Array.from({ length: count }, (_, i) => databaseEvent(i)) })));
    const message = (p: Buffer, count: number, messageId: number) => encode({ topic, payload: p, qos: 1, dup: false, retain: false, messageId, properties: { userProperties: { count: String(count) } } });

    const good = feed([message(payload(3), 3, 1), message(Buffer.from("not checked: the 2nd message"), 1, 2)]);
    expect(good.subscriber.failure).toBeNull();
    expect(good.subscriber.events).toBe(4);

    const wrongCount = feed([message(payload(3), 2, 1)]);
    expect(wrongCount.subscriber.failure?.message).toMatch(/not a TeraEvent of 2 DatabaseEvents/);
    const garbage = feed([message(Buffer.from([0xff, 0xff, 0xff]), 1, 1)]);
    expect(garbage.subscriber.failure?.message).toMatch(/not a TeraEvent of 1 DatabaseEvents/);
    // The 501st message is the next one checked.
    const many = Array.from({ length: 501 }, (_, i) => message(i === 500 ? Buffer.from("x") : i === 0 ? payload(1) : Buffer.alloc(0), 1, 1 + i));
    expect(feed(many.slice(0, 500)).subscriber.failure).toBeNull();
    expect(feed(many).subscriber.failure).not.toBeNull();
  });

  it("a malformed packet stops the subscriber: waitForEvents() rejects", async () => {
    // Property 0x11 (session expiry) is not one a PUBLISH carries.
    const { subscriber } = feed([Buffer.from([0x30, 0x07, 0x00, 0x01, 0x74, 0x02, 0x11, 0x00, 0x78])]);
    await expect(subscriber.waitForEvents(1)).rejects.toThrow(/property 0x11/);
    const tooLong = feed([Buffer.from([0x30, 0xff, 0xff, 0xff, 0xff, 0x01])]).subscriber;
    await expect(tooLong.waitForEvents(1)).rejects.toThrow(/longer than 4 bytes/);
  });
});

describe("the bench subscriber on a real broker", () => {
  let broker: Broker;
  beforeAll(async () => {
    broker = await startBroker();
  });
  afterAll(async () => {
    await broker?.close();
  });

  it("subscribes at QoS 1 and acknowledges every message an mqtt.js publisher sends, counting its events", async () => {
    const topic = "bench/subscriber/test";
    const subscriber = await Subscriber.start(broker.url, topic);
    const publisher = await mqtt.connectAsync(broker.url, { protocolVersion: 5, clean: true, reconnectPeriod: 0 });
    try {
      const total = 3_000;
      const properties = (i: number) => ({ contentType: "application/x-protobuf", userProperties: { "commit-time": "2026-12-07T03:41:07.25+00:00", count: String(1 + (i % 3)), seq: String(i) } });
      // publishAsync at QoS 1 resolves on the PUBACK: every one must come back from the broker, which only sends on as the subscriber acknowledges.
      await Promise.all(Array.from({ length: total }, (_, i) => publisher.publishAsync(topic, Buffer.alloc(i % 300, i % 256), { qos: 1, properties: properties(i) })));
      const events = Array.from({ length: total }, (_, i) => 1 + (i % 3)).reduce((a, b) => a + b, 0);
      await subscriber.waitForEvents(events, 10_000);
      expect(subscriber.events).toBe(events);
      expect(subscriber.messages).toBe(total);
      expect(subscriber.payloadBytes).toBe(Array.from({ length: total }, (_, i) => i % 300).reduce((a, b) => a + b, 0));
      expect(subscriber.firstCommitMs).toBe(Date.parse("2026-12-07T03:41:07Z") + 250);
      expect(subscriber.lastProperties).toEqual(properties(total - 1).userProperties);
      expectSameBytes(subscriber.lastPayload, Buffer.alloc((total - 1) % 300, (total - 1) % 256));
      // The broker holds nothing unacknowledged for it: a second batch arrives in full too.
      subscriber.reset();
      await Promise.all(Array.from({ length: 1_500 }, (_, i) => publisher.publishAsync(topic, Buffer.from("x"), { qos: 1, properties: { userProperties: { count: "1", seq: String(i) } } })));
      await subscriber.waitForEvents(1_500, 10_000);
      expect(subscriber.messages).toBe(1_500);
    } finally {
      await publisher.endAsync();
      await subscriber.close();
    }
  });

  it("refuses a subscription the broker refuses", async () => {
    // Mosquitto refuses a filter with a wildcard in the middle of a level (SUBACK reason 0x8F, or a DISCONNECT).
    await expect(Subscriber.start(broker.url, "bench/a#")).rejects.toThrow();
  });
});
