import { randomBytes } from "node:crypto";
import { encodeMessage, type Value } from "../messages/index.js";

/** A string argument of an RPC call. */
export function stringValue(text: string): Value {
  return { $type: "opentera.protobuf.Value", argValue: { $case: "stringValue", stringValue: text } };
}

/** An integer argument of an RPC call. */
export function intValue(n: number): Value {
  return { $type: "opentera.protobuf.Value", argValue: { $case: "intValue", intValue: BigInt(n) } };
}

/** A reply as an OpenTera RPC listener sends it: `{"id": n, "return_value": ...}`, or with `error`. */
export interface RpcReply {
  readonly id: number;
  readonly return_value?: unknown;
  readonly error?: string;
}

/** A reply read from the broker, where anyone allowed to publish on the topic could have put anything: null when it is not one. */
function parseRpcReply(value: unknown): RpcReply | null {
  if (value === null || typeof value !== "object" || Array.isArray(value)) return null;
  const r: Partial<Record<keyof RpcReply, unknown>> = value;
  if (typeof r.id !== "number" || (r.error !== undefined && typeof r.error !== "string")) return null;
  return { id: r.id, return_value: r.return_value, ...(r.error !== undefined ? { error: r.error } : {}) };
}

/**
 * Calls a module's RPC methods as OpenTera's RPC clients do: an RPCMessage on the module's RPC
 * topic naming a reply topic, the JSON reply matched to its call by id. The caller subscribes to
 * the reply topic and hands what arrives there to `received`; `publish` sends the request.
 */
export class RpcClient {
  private readonly pending = new Map<number, (reply: RpcReply) => void>();
  private nextId = Number.parseInt(randomBytes(3).toString("hex"), 16);

  constructor(
    private readonly o: {
      readonly rpcTopic: string;
      readonly replyTopic: string;
      /** Time to wait for a reply before the call fails with `unanswered(method)` as its message. */
      readonly timeoutMs: number;
      readonly unanswered: (method: string) => string;
      readonly publish: (topic: string, bytes: Uint8Array) => void;
    },
  ) {}

  /** A message on the reply topic: the reply to its call, if it is a well-formed reply to one. */
  received(payload: Buffer): void {
    let value: unknown;
    try {
      value = JSON.parse(payload.toString("utf8"));
    } catch {
      return;
    }
    const reply = parseRpcReply(value);
    if (!reply) return;
    this.pending.get(reply.id)?.(reply);
    this.pending.delete(reply.id);
  }

  call(method: string, args: Value[]): Promise<RpcReply> {
    const id = ++this.nextId;
    const bytes = encodeMessage({ $type: "opentera.protobuf.RPCMessage", method, replyTo: this.o.replyTopic, id: BigInt(id), timestamp: Date.now() / 1000, args });
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(this.o.unanswered(method)));
      }, this.o.timeoutMs);
      this.pending.set(id, (reply) => {
        clearTimeout(timer);
        resolve(reply);
      });
      this.o.publish(this.o.rpcTopic, bytes);
    });
  }
}
