import mqtt, { type MqttClient } from "mqtt";
import { decodeTeraEvent, encodeMessage, unpackAny, type Value } from "../../src/messages/index.js";

/** Deterministic PRNG (mulberry32) so a failing seed can be replayed. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface Marker {
  readonly kind: string;
  readonly snapshot: string;
  readonly properties: Record<string, string>;
}

/**
 * A consumer that starts empty and applies a model's stream in arrival order, as a cache would:
 * upsert on create/update (snapshot rows included), remove on delete, clear on truncate.
 */
export interface AppliedState {
  readonly rows: Map<string, Record<string, unknown>>;
  readonly markers: Marker[];
  /** Snapshot rows received, by snapshot id. */
  readonly snapshotRows: Map<string, number>;
  readonly liveEvents: { count: number };
  close(): Promise<void>;
}

export async function applyStream(url: string, model: string, keyOf: (object: Record<string, unknown>) => string): Promise<AppliedState> {
  const client = await mqtt.connectAsync(url, { protocolVersion: 5, clean: true, reconnectPeriod: 200 });
  const rows = new Map<string, Record<string, unknown>>();
  const markers: Marker[] = [];
  const snapshotRows = new Map<string, number>();
  const liveEvents = { count: 0 };
  client.on("message", (_topic, payload, packet) => {
    const properties = (packet.properties?.userProperties ?? {}) as Record<string, string>;
    const decoded = decodeTeraEvent(payload);
    if (!decoded.ok) throw new Error(decoded.error.message);
    if (properties["snapshot-marker"]) {
      markers.push({ kind: properties["snapshot-marker"], snapshot: properties.snapshot ?? "", properties });
      return;
    }
    for (const any of decoded.message.events) {
      const unpacked = unpackAny(any);
      if (unpacked.type !== "DatabaseEvent") continue;
      const object = JSON.parse(unpacked.message.objectValue) as Record<string, unknown>;
      if (properties.snapshot) snapshotRows.set(properties.snapshot, (snapshotRows.get(properties.snapshot) ?? 0) + 1);
      else liveEvents.count++;
      if (unpacked.message.type === 3) {
        if (Object.keys(object).length === 0) rows.clear();
        else rows.delete(keyOf(object));
      } else {
        rows.set(keyOf(object), object);
      }
    }
  });
  await client.subscribeAsync(`module/TeraServer/DatabaseModule/events/${model}`, { qos: 1 });
  return { rows, markers, snapshotRows, liveEvents, close: () => client.endAsync(true) };
}

export function stringArg(text: string): Value {
  return { $type: "opentera.protobuf.Value", argValue: { $case: "stringValue", stringValue: text } };
}

export function intArg(n: number): Value {
  return { $type: "opentera.protobuf.Value", argValue: { $case: "intValue", intValue: BigInt(n) } };
}

/** An OpenTera RPC caller: publishes RPCMessages to the module's RPC topic, waits for the JSON reply. */
export async function rpcClient(url: string, rpcTopic = "module/tera-cdc/rpc"): Promise<{
  call(method: string, args?: Value[], replyTo?: string): Promise<{ id: number; return_value?: any; error?: string }>;
  client: MqttClient;
  close(): Promise<void>;
}> {
  const client = await mqtt.connectAsync(url, { protocolVersion: 5, clean: true });
  // Under tera-cdc's default rpc-reply-prefixes: a reply topic elsewhere is not answered.
  const replyTopic = `tera-cdc/cli/test-${Math.random().toString(16).slice(2)}/reply`;
  const waiting = new Map<number, (reply: any) => void>();
  client.on("message", (_topic, payload) => {
    const reply = JSON.parse(payload.toString());
    waiting.get(reply.id)?.(reply);
  });
  await client.subscribeAsync([replyTopic, "tera-cdc/cli/dotted/replies"], { qos: 1 });
  let nextId = 1;
  return {
    client,
    call(method, args = [], replyTo = replyTopic) {
      const id = nextId++;
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no reply to ${method}`)), 30_000);
        waiting.set(id, (reply) => {
          clearTimeout(timer);
          resolve(reply);
        });
        const bytes = encodeMessage({ $type: "opentera.protobuf.RPCMessage", method, replyTo, id: BigInt(id), timestamp: Date.now() / 1000, args });
        client.publish(rpcTopic, Buffer.from(bytes), { qos: 1 });
      });
    },
    close: () => client.endAsync(true),
  };
}
