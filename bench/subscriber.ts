/**
 * The bench's MQTT 5 subscriber: one QoS 1 subscription on a raw socket, counting DatabaseEvents.
 *
 * Why not mqtt.js: on a 2-core machine tera-cdc, Mosquitto and the subscriber saturate the CPU
 * together, so the end-to-end rate is set by the summed CPU per message of all three. mqtt.js's
 * parser (mqtt-packet) builds an object for every user property of every message; with tera-cdc's
 * six or seven properties that cost the machine about twice what the bare client's property-less
 * messages cost, and the bench measured its own subscriber as much as tera-cdc. This one reads only
 * what the bench needs: the packet id (to acknowledge), the `count` and `snapshot-marker` user
 * properties (found by scanning the property block, no strings built), the first message's
 * `commit-time`, and the payload's length. Every 500th payload on a DatabaseEvent topic is still
 * decoded in full to check it is a TeraEvent of that many DatabaseEvents. The full property set is
 * built only on demand (`lastProperties`) or for an `onMessage` listener.
 *
 * The wire format it reads is MQTT 5.0 (OASIS), sections 2.1 (fixed header, variable byte
 * integer), 2.2.2 (properties), 3.3 (PUBLISH), 3.4 (PUBACK); test/bench/subscriber.test.ts checks
 * it against mqtt-packet's generate().
 */
import { connect, type Socket } from "node:net";
import { performance } from "node:perf_hooks";
import { decodeTeraEvent, unpackAny } from "../src/messages/index.js";

/** Topics of tera-cdc's DatabaseEvents: the payloads the subscriber checks every 500th of. */
export const TOPIC_PREFIX = "module/TeraServer/DatabaseModule/events/";
const CHECK_EVERY = 500;

const now = () => performance.timeOrigin + performance.now();

/** `2024-05-01T12:00:00.123456+00:00` (the commit-time property) as epoch milliseconds with a fraction. */
export function commitTimeMs(iso: string | undefined): number {
  const m = iso ? /^(.{19})(?:\.(\d+))?/.exec(iso) : null;
  if (!m) return Number.NaN;
  return Date.parse(`${m[1]}Z`) + (m[2] ? Number(`0.${m[2]}`) * 1000 : 0);
}

// MQTT 5 property identifiers (section 2.2.2.2) that can occur in a PUBLISH, by the size of their value.
const PROPERTY_BYTE = new Set([0x01]); // payload format indicator
const PROPERTY_TWO_BYTES = new Set([0x23]); // topic alias
const PROPERTY_FOUR_BYTES = new Set([0x02]); // message expiry interval
const PROPERTY_VARINT = new Set([0x0b]); // subscription identifier
const PROPERTY_LENGTH_PREFIXED = new Set([0x03, 0x08, 0x09]); // content type, response topic, correlation data
const USER_PROPERTY = 0x26;

const KEY_COUNT = Buffer.from("count");
const KEY_SNAPSHOT_MARKER = Buffer.from("snapshot-marker");
const KEY_COMMIT_TIME = Buffer.from("commit-time");

function bytesEqual(buf: Buffer, start: number, length: number, expected: Buffer): boolean {
  if (length !== expected.length) return false;
  for (let i = 0; i < length; i++) if (buf[start + i] !== expected[i]) return false;
  return true;
}

/** The decimal number written in ASCII at `start` (the `count` property), NaN when it is not one. */
function decimalAt(buf: Buffer, start: number, length: number): number {
  let value = 0;
  for (let i = start; i < start + length; i++) {
    const digit = buf[i]! - 0x30;
    if (digit < 0 || digit > 9) return Number.NaN;
    value = value * 10 + digit;
  }
  return value;
}

/** A variable byte integer (MQTT 5 section 1.5.5) at `pos`: its value and the position after it, or null when `end` cuts it. */
function readVarint(buf: Buffer, pos: number, end: number): { value: number; next: number } | null {
  let value = 0;
  let multiplier = 1;
  for (let i = 0; i < 4; i++) {
    if (pos + i >= end) return null;
    const byte = buf[pos + i]!;
    value += (byte & 0x7f) * multiplier;
    if ((byte & 0x80) === 0) return { value, next: pos + i + 1 };
    multiplier *= 128;
  }
  throw new Error("malformed MQTT packet: a variable byte integer longer than 4 bytes");
}

/** Every user property of a property block as one object (a repeated key keeps its last value). */
function userPropertiesOf(buf: Buffer, start: number, end: number): Record<string, string> {
  const properties: Record<string, string> = {};
  forEachProperty(buf, start, end, (keyStart, keyLength, valueStart, valueLength) => {
    properties[buf.toString("utf8", keyStart, keyStart + keyLength)] = buf.toString("utf8", valueStart, valueStart + valueLength);
  });
  return properties;
}

/** Walks a PUBLISH property block, calling `onUser` with the offsets of each user property's key and value. */
function forEachProperty(buf: Buffer, start: number, end: number, onUser: (keyStart: number, keyLength: number, valueStart: number, valueLength: number) => void): void {
  let pos = start;
  while (pos < end) {
    const id = buf[pos++]!;
    if (id === USER_PROPERTY) {
      const keyLength = buf.readUInt16BE(pos);
      const valueAt = pos + 2 + keyLength;
      const valueLength = buf.readUInt16BE(valueAt);
      onUser(pos + 2, keyLength, valueAt + 2, valueLength);
      pos = valueAt + 2 + valueLength;
    } else if (PROPERTY_LENGTH_PREFIXED.has(id)) pos += 2 + buf.readUInt16BE(pos);
    else if (PROPERTY_BYTE.has(id)) pos += 1;
    else if (PROPERTY_TWO_BYTES.has(id)) pos += 2;
    else if (PROPERTY_FOUR_BYTES.has(id)) pos += 4;
    else if (PROPERTY_VARINT.has(id)) {
      const v = readVarint(buf, pos, end);
      if (!v) throw new Error("malformed MQTT PUBLISH: a subscription identifier cut short");
      pos = v.next;
    } else throw new Error(`malformed MQTT PUBLISH: property 0x${id.toString(16)} is not one a PUBLISH carries`);
  }
  if (pos !== end) throw new Error("malformed MQTT PUBLISH: the properties overrun their block");
}

/**
 * The subscriber's state and packet reader, independent of the socket: `receive()` takes the bytes
 * as TCP delivers them (cut anywhere), `send` gets the acknowledgements (one write per chunk read).
 */
export class Subscriber {
  events = 0;
  messages = 0;
  payloadBytes = 0;
  firstCommitMs = Number.NaN;
  lastAt = 0;
  onMessage: ((payload: Buffer, properties: Record<string, string>, at: number) => void) | null = null;
  /** Set when a packet could not be read or a checked payload was wrong; waitForEvents() rejects with it. */
  failure: Error | null = null;
  /** CONNACK and SUBACK, for start(): resolved with the packet type and its reason code. */
  private handshake: ((type: number, reason: number) => void) | null = null;
  private wake: (() => void) | null = null;
  // The last PUBLISH, kept as offsets into the chunk that held it: its properties and payload are
  // only made into objects when asked for.
  private lastBuffer: Buffer = Buffer.alloc(0);
  private lastPropertiesStart = 0;
  private lastPropertiesEnd = 0;
  private lastPayloadStart = 0;
  private lastPayloadEnd = 0;
  // Bytes of a packet that a chunk cut: the pieces so far, their length, and the packet's whole length once known.
  private pending: Buffer[] = [];
  private pendingLength = 0;
  private pendingNeeds = 0;
  private closeConnection: () => Promise<void> = async () => {};

  constructor(private readonly send: (bytes: Buffer) => void) {}

  /** The user properties of the last PUBLISH (MQTT 5 user properties, as mqtt.js gave them). */
  get lastProperties(): Record<string, string> {
    return userPropertiesOf(this.lastBuffer, this.lastPropertiesStart, this.lastPropertiesEnd);
  }

  get lastPayload(): Buffer {
    return this.lastBuffer.subarray(this.lastPayloadStart, this.lastPayloadEnd);
  }

  /** Connects, subscribes to `topic` at QoS 1 with a clean session, and counts from then on. */
  static async start(url: string, topic: string): Promise<Subscriber> {
    const { hostname, port } = new URL(url);
    const socket: Socket = connect(Number(port || 1883), hostname);
    socket.setNoDelay(true);
    const subscriber = new Subscriber((bytes) => socket.write(bytes));
    socket.on("data", (chunk: Buffer) => subscriber.receive(chunk));
    const closed = new Promise<void>((resolve) => socket.once("close", () => resolve()));
    const step = (type: number) =>
      new Promise<void>((resolve, reject) => {
        const refused = () => reject(subscriber.failure ?? new Error(`the broker closed the connection before ${type === 0x20 ? "CONNACK" : "SUBACK"}`));
        socket.once("error", reject);
        socket.once("close", refused);
        subscriber.handshake = (got, reason) => {
          subscriber.handshake = null;
          socket.off("error", reject);
          socket.off("close", refused);
          if (got !== type || reason >= 0x80) reject(new Error(`MQTT ${type === 0x20 ? "CONNECT" : "SUBSCRIBE"} refused: packet type ${got >> 4}, reason 0x${reason.toString(16)}`));
          else resolve();
        };
      });
    await new Promise<void>((resolve, reject) => {
      socket.once("connect", resolve);
      socket.once("error", reject);
    });
    const connected = step(0x20);
    socket.write(connectPacket(`bench-${process.pid}-${Math.random().toString(16).slice(2, 10)}`));
    await connected;
    const subscribed = step(0x90);
    socket.write(subscribePacket(topic));
    await subscribed;
    socket.on("error", (error) => (subscriber.failure ??= error));
    subscriber.closeConnection = async () => {
      // DISCONNECT, normal disconnection (reason code and properties left out, section 3.14.2.1).
      socket.end(Buffer.from([0xe0, 0x00]));
      await closed;
    };
    return subscriber;
  }

  async close(): Promise<void> {
    await this.closeConnection();
  }

  reset(): void {
    this.events = 0;
    this.messages = 0;
    this.payloadBytes = 0;
    this.firstCommitMs = Number.NaN;
    this.lastAt = 0;
  }

  /** Resolves once `count` events arrived; rejects when none arrived for `stallMs`, or a packet was wrong. */
  async waitForEvents(count: number, stallMs = 60_000): Promise<void> {
    let seen = this.events;
    let lastProgress = now();
    while (this.events < count) {
      if (this.failure) throw this.failure;
      await new Promise<void>((resolve) => {
        this.wake = resolve;
        setTimeout(resolve, 1000);
      });
      this.wake = null;
      if (this.events !== seen) {
        seen = this.events;
        lastProgress = now();
      } else if (now() - lastProgress > stallMs) {
        throw new Error(`subscriber stalled at ${this.events} of ${count} events`);
      }
    }
    if (this.failure) throw this.failure;
  }

  /** Reads every whole packet of `chunk` (with the bytes an earlier chunk left), acknowledging QoS 1 PUBLISHes. */
  receive(chunk: Buffer): void {
    if (this.failure) return;
    let buf = chunk;
    if (this.pendingLength > 0) {
      this.pending.push(chunk);
      this.pendingLength += chunk.length;
      // A packet longer than a chunk: join the pieces only once it is whole.
      if (this.pendingNeeds > 0 && this.pendingLength < this.pendingNeeds) return;
      buf = Buffer.concat(this.pending, this.pendingLength);
      this.pending = [];
      this.pendingLength = 0;
      this.pendingNeeds = 0;
    }
    const acks: number[] = [];
    let pos = 0;
    try {
      while (pos < buf.length) {
        const length = buf.length > pos + 1 ? readVarint(buf, pos + 1, buf.length) : null;
        if (!length || length.next + length.value > buf.length) {
          this.pending.push(buf.subarray(pos));
          this.pendingLength = buf.length - pos;
          this.pendingNeeds = length ? length.next + length.value - pos : 0;
          break;
        }
        const end = length.next + length.value;
        const packetId = this.packet(buf, buf[pos]!, length.next, end);
        if (packetId > 0) acks.push(packetId);
        pos = end;
      }
    } catch (error) {
      this.failure = error as Error;
    }
    if (acks.length > 0) this.send(pubacks(acks));
    this.wake?.();
  }

  /** One packet from its first byte `header`, variable header at `start`; returns the packet id to acknowledge (0: none). */
  private packet(buf: Buffer, header: number, start: number, end: number): number {
    const type = header & 0xf0;
    if (type === 0x30) return this.publish(buf, header, start, end);
    if (type === 0x20) this.handshake?.(type, buf[start + 1] ?? 0); // CONNACK: flags, reason code
    else if (type === 0x90) {
      // SUBACK: packet id, properties, one reason code per subscription.
      const properties = readVarint(buf, start + 2, end)!;
      this.handshake?.(type, buf[properties.next + properties.value] ?? 0x80);
    } else if (type === 0xe0) throw new Error(`the broker disconnected the subscriber (reason 0x${(buf[start] ?? 0).toString(16)})`);
    return 0;
  }

  private publish(buf: Buffer, header: number, start: number, end: number): number {
    const at = now();
    const qos = (header >> 1) & 0x03;
    const topicLength = buf.readUInt16BE(start);
    const topicStart = start + 2;
    let pos = topicStart + topicLength;
    let packetId = 0;
    if (qos > 0) {
      packetId = buf.readUInt16BE(pos);
      pos += 2;
    }
    if (qos > 1) throw new Error("the bench subscriber reads QoS 0 and 1 only");
    const propertiesLength = readVarint(buf, pos, end);
    if (!propertiesLength) throw new Error("malformed MQTT PUBLISH: properties length cut short");
    const propertiesStart = propertiesLength.next;
    const propertiesEnd = propertiesStart + propertiesLength.value;
    if (propertiesEnd > end) throw new Error("malformed MQTT PUBLISH: properties longer than the packet");

    // A snapshot marker is a TeraEvent with no DatabaseEvent; a batched TeraEvent names its count.
    let count = 1;
    let marker = false;
    let commitTime: string | undefined;
    const first = this.messages === 0;
    forEachProperty(buf, propertiesStart, propertiesEnd, (keyStart, keyLength, valueStart, valueLength) => {
      if (bytesEqual(buf, keyStart, keyLength, KEY_COUNT)) {
        if (valueLength > 0) count = decimalAt(buf, valueStart, valueLength);
      } else if (bytesEqual(buf, keyStart, keyLength, KEY_SNAPSHOT_MARKER)) marker ||= valueLength > 0;
      else if (first && bytesEqual(buf, keyStart, keyLength, KEY_COMMIT_TIME)) commitTime = buf.toString("utf8", valueStart, valueStart + valueLength);
    });
    if (marker) count = 0;
    if (first) this.firstCommitMs = commitTimeMs(commitTime);
    if (this.messages % CHECK_EVERY === 0 && buf.toString("utf8", topicStart, topicStart + topicLength).startsWith(TOPIC_PREFIX)) {
      const decoded = decodeTeraEvent(buf.subarray(propertiesEnd, end));
      if (!decoded.ok || decoded.message.events.length !== count || (count > 0 && unpackAny(decoded.message.events[0]!).type !== "DatabaseEvent")) {
        throw new Error(`subscriber received a payload that is not a TeraEvent of ${count} DatabaseEvents`);
      }
    }
    this.events += count;
    this.messages++;
    this.payloadBytes += end - propertiesEnd;
    this.lastAt = at;
    this.lastBuffer = buf;
    this.lastPropertiesStart = propertiesStart;
    this.lastPropertiesEnd = propertiesEnd;
    this.lastPayloadStart = propertiesEnd;
    this.lastPayloadEnd = end;
    this.onMessage?.(this.lastPayload, this.lastProperties, at);
    return packetId;
  }
}

/** A variable byte integer's bytes. */
function varint(value: number): number[] {
  const bytes: number[] = [];
  do {
    let byte = value % 128;
    value = Math.floor(value / 128);
    if (value > 0) byte |= 0x80;
    bytes.push(byte);
  } while (value > 0);
  return bytes;
}

function utf8(text: string): number[] {
  const bytes = Buffer.from(text);
  return [bytes.length >> 8, bytes.length & 0xff, ...bytes];
}

/** CONNECT, MQTT 5, clean start, keep alive off (the bench's connections are local and short), no properties. */
function connectPacket(clientId: string): Buffer {
  const body = [...utf8("MQTT"), 5, 0x02, 0, 0, 0, ...utf8(clientId)];
  return Buffer.from([0x10, ...varint(body.length), ...body]);
}

/** SUBSCRIBE packet id 1, no properties, one filter at QoS 1. */
function subscribePacket(topic: string): Buffer {
  const body = [0, 1, 0, ...utf8(topic), 0x01];
  return Buffer.from([0x82, ...varint(body.length), ...body]);
}

/** PUBACKs for `ids`, success: reason code and properties left out (section 3.4.2.1), 4 bytes each. */
function pubacks(ids: number[]): Buffer {
  const out = Buffer.allocUnsafe(ids.length * 4);
  for (let i = 0; i < ids.length; i++) {
    out[i * 4] = 0x40;
    out[i * 4 + 1] = 0x02;
    out.writeUInt16BE(ids[i]!, i * 4 + 2);
  }
  return out;
}
