/**
 * PUBLISH packets encoded in one buffer, byte for byte as mqtt-packet's `generate()` encodes them
 * (test/mqtt/publish-packet.test.ts compares the two on random packets), for the sink's hot path.
 *
 * Why: mqtt-packet writes a PUBLISH as about forty small stream writes and works out every user
 * property's length and bytes again for every message; with tera-cdc's properties that was two
 * thirds of the publishing CPU (issue 18 profile). Most of them (lsn, xid, commit-time, table, op)
 * are the same for every change of a transaction and relation: a property pair seen twice in a row
 * with the same value is kept encoded and copied from then on.
 *
 * Only what the sink sends is encoded here: a content type and string user properties. Anything
 * else (another property, a non-string value, an empty user property list) gets null, and mqtt.js
 * encodes that packet with mqtt-packet as usual.
 */

export interface PublishPacket {
  readonly cmd: "publish";
  readonly topic: string | Buffer;
  readonly payload: Buffer | string;
  readonly qos?: number;
  readonly dup?: boolean;
  readonly retain?: boolean;
  readonly messageId?: number;
  readonly properties?: unknown;
}

const PUBLISH = 0x30;
const CONTENT_TYPE = 0x03;
const USER_PROPERTY = 0x26;
/** MQTT's largest variable byte integer (a packet's remaining length, a property block's length). */
const VARINT_MAX = 268_435_455;
const STRING_MAX = 0xffff;
/** Larger payloads go out as a second buffer rather than being copied after the header. */
const COPY_PAYLOAD_MAX = 16 * 1024;
/** Distinct topics and property names kept encoded; past that the cache starts again. */
const CACHE_MAX = 4096;

interface CachedPair {
  value: string;
  /** id, name and value encoded; made when the same value comes a second time in a row. */
  bytes: Buffer | null;
}

/** Bytes of a variable byte integer. */
export function varintBytes(n: number): number {
  return n < 128 ? 1 : n < 16_384 ? 2 : n < 2_097_152 ? 3 : 4;
}

function writeVarint(buffer: Buffer, offset: number, n: number): number {
  do {
    let byte = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) byte |= 0x80;
    buffer[offset++] = byte;
  } while (n > 0);
  return offset;
}

function writeString(buffer: Buffer, offset: number, text: string, bytes: number): number {
  buffer.writeUInt16BE(bytes, offset);
  return offset + 2 + buffer.write(text, offset + 2, bytes, "utf8");
}

function encodedPair(id: number, name: string, value: string): Buffer {
  const nameBytes = Buffer.byteLength(name);
  const valueBytes = Buffer.byteLength(value);
  const buffer = Buffer.allocUnsafe(5 + nameBytes + valueBytes);
  buffer[0] = id;
  writeString(buffer, writeString(buffer, 1, name, nameBytes), value, valueBytes);
  return buffer;
}

/** Encodes PUBLISH packets for one connection (MQTT 5, or 3.1.1 where properties are not sent). */
export class PublishEncoder {
  private readonly topics = new Map<string, Buffer>();
  private readonly pairs = new Map<string, CachedPair>();
  private contentType: { value: string; bytes: Buffer } | null = null;
  // Per-packet scratch of the property block, reused: a cached encoding, or a name and value to encode.
  private readonly cached: (Buffer | null)[] = [];
  private readonly names: string[] = [];
  private readonly values: string[] = [];
  private readonly nameBytes: number[] = [];
  private readonly valueBytes: number[] = [];

  /** The packet's bytes (a large payload as a second buffer, not copied), or null for what mqtt-packet must encode. */
  encode(packet: PublishPacket, protocolVersion: number): Buffer[] | null {
    const qos = packet.qos ?? 0;
    if (qos !== 0 && qos !== 1 && qos !== 2) return null;
    if (qos > 0 && typeof packet.messageId !== "number") return null;
    const payload = typeof packet.payload === "string" ? Buffer.from(packet.payload) : packet.payload;
    if (!Buffer.isBuffer(payload)) return null;
    const topic = this.topic(packet.topic);
    if (topic === null) return null;

    let count = 0;
    let propertiesLength = 0;
    let contentType: Buffer | null = null;
    if (protocolVersion === 5 && packet.properties !== undefined) {
      const properties = packet.properties as Record<string, unknown>;
      if (typeof properties !== "object" || properties === null || Array.isArray(properties)) return null;
      // The block in mqtt-packet's order: the properties object's own keys as `for in` gives them.
      let userSeen = false;
      for (const key in properties) {
        if (!Object.prototype.hasOwnProperty.call(properties, key)) return null;
        const value = properties[key];
        if (value === undefined) continue;
        if (key === "contentType") {
          if (typeof value !== "string" || contentType !== null || userSeen) return null;
          contentType = this.contentTypeBytes(value);
          if (contentType === null) return null;
          propertiesLength += contentType.length;
        } else if (key === "userProperties") {
          if (typeof value !== "object" || value === null || Array.isArray(value)) return null;
          userSeen = true;
          const pairs = value as Record<string, unknown>;
          for (const name of Object.getOwnPropertyNames(pairs)) {
            const text = pairs[name];
            if (typeof text !== "string") return null;
            const bytes = this.pairBytes(name, text);
            this.cached[count] = bytes;
            if (bytes !== null) propertiesLength += bytes.length;
            else {
              const n = Buffer.byteLength(name);
              const v = Buffer.byteLength(text);
              if (n > STRING_MAX || v > STRING_MAX) return null;
              this.names[count] = name;
              this.values[count] = text;
              this.nameBytes[count] = n;
              this.valueBytes[count] = v;
              propertiesLength += 5 + n + v;
            }
            count++;
          }
          // mqtt-packet sends nothing at all for an empty user property list: leave that to it.
          if (count === 0) return null;
        } else return null;
      }
      if (propertiesLength > VARINT_MAX) return null;
    }
    const propertyBlock = protocolVersion === 5 ? varintBytes(propertiesLength) + propertiesLength : 0;
    const remaining = topic.length + (qos > 0 ? 2 : 0) + propertyBlock + payload.length;
    if (remaining > VARINT_MAX) return null;
    const copyPayload = payload.length <= COPY_PAYLOAD_MAX;
    const headLength = 1 + varintBytes(remaining) + remaining - (copyPayload ? 0 : payload.length);
    const head = Buffer.allocUnsafe(headLength);
    head[0] = PUBLISH | (qos << 1) | (packet.dup ? 0x08 : 0) | (packet.retain ? 0x01 : 0);
    let offset = writeVarint(head, 1, remaining);
    offset += topic.copy(head, offset);
    if (qos > 0) offset = head.writeUInt16BE(packet.messageId!, offset);
    if (protocolVersion === 5) {
      offset = writeVarint(head, offset, propertiesLength);
      if (contentType !== null) offset += contentType.copy(head, offset);
      for (let i = 0; i < count; i++) {
        const bytes = this.cached[i];
        if (bytes) offset += bytes.copy(head, offset);
        else {
          head[offset++] = USER_PROPERTY;
          offset = writeString(head, offset, this.names[i]!, this.nameBytes[i]!);
          offset = writeString(head, offset, this.values[i]!, this.valueBytes[i]!);
        }
        this.cached[i] = null;
      }
    }
    if (!copyPayload) return [head, payload];
    payload.copy(head, offset);
    return [head];
  }

  /** The topic with its length prefix, kept per topic; null for one mqtt-packet must handle. */
  private topic(topic: string | Buffer): Buffer | null {
    if (Buffer.isBuffer(topic)) {
      if (topic.length > STRING_MAX) return null;
      const out = Buffer.allocUnsafe(2 + topic.length);
      out.writeUInt16BE(topic.length, 0);
      topic.copy(out, 2);
      return out;
    }
    if (typeof topic !== "string") return null;
    let bytes = this.topics.get(topic);
    if (bytes === undefined) {
      const length = Buffer.byteLength(topic);
      if (length > STRING_MAX) return null;
      bytes = Buffer.allocUnsafe(2 + length);
      writeString(bytes, 0, topic, length);
      if (this.topics.size >= CACHE_MAX) this.topics.clear();
      this.topics.set(topic, bytes);
    }
    return bytes;
  }

  private contentTypeBytes(value: string): Buffer | null {
    if (this.contentType?.value !== value) {
      const length = Buffer.byteLength(value);
      if (length > STRING_MAX) return null;
      const bytes = Buffer.allocUnsafe(3 + length);
      bytes[0] = CONTENT_TYPE;
      writeString(bytes, 1, value, length);
      this.contentType = { value, bytes };
    }
    return this.contentType.bytes;
  }

  /** The pair's encoding when its value repeats the last one of that name; null to encode it in place. */
  private pairBytes(name: string, value: string): Buffer | null {
    const entry = this.pairs.get(name);
    if (entry === undefined) {
      if (this.pairs.size >= CACHE_MAX) this.pairs.clear();
      this.pairs.set(name, { value, bytes: null });
      return null;
    }
    if (entry.value !== value) {
      entry.value = value;
      entry.bytes = null;
      return null;
    }
    if (entry.bytes === null) {
      if (Buffer.byteLength(name) > STRING_MAX || Buffer.byteLength(value) > STRING_MAX) return null;
      entry.bytes = encodedPair(USER_PROPERTY, name, value);
    }
    return entry.bytes;
  }
}
