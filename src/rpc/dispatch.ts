import { decodeRPCMessage, toMqttTopic, type Value } from "../messages/index.js";
import { failureTag, type PublicFailure, publicFailure } from "../ops/failure.js";

/**
 * OpenTera RPC, the pure part: decode an RPCMessage, check its method and `Value` arguments, and
 * shape the JSON reply OpenTera's RPC clients expect: `{"id": <request id>, "return_value": ...}`
 * or `{"id": ..., "error": "..."}`, published on the request's reply_to topic.
 */

/** A wrong argument or a refused request: its message goes back to the caller as `error`. */
export class RpcError extends Error {
  override readonly name = "RpcError";
}

export type ArgValue = string | number | boolean | bigint | Uint8Array | null;

/**
 * Who asked, as far as MQTT lets tera-cdc know: the reply topic the answer goes to. With the
 * broker ACL of docs/security.md only its owner reads that topic, so it stands for the caller.
 */
export interface RpcCaller {
  readonly replyTopic: string;
  /** The reply topic is under an operator prefix (setting rpc-operator-prefixes). */
  readonly operator: boolean;
}

/** A method: its arguments, checked with the helpers of `RpcArgs`; the return value is sent as JSON. */
export type RpcMethod = (args: RpcArgs, caller: RpcCaller) => Promise<unknown>;

export interface RpcMethodSpec {
  readonly handler: RpcMethod;
  /** `name(arg, [optional])`, for error messages. */
  readonly signature: string;
}

export function valueOf(value: Value): ArgValue {
  const v = value.argValue;
  if (!v) return null;
  switch (v.$case) {
    case "doubleValue":
      return v.doubleValue;
    case "floatValue":
      return v.floatValue;
    case "intValue":
      return v.intValue;
    case "uintValue":
      return v.uintValue;
    case "boolValue":
      return v.boolValue;
    case "bytesValue":
      return v.bytesValue;
    case "stringValue":
      return v.stringValue;
  }
}

/** The arguments of one call, read by position with a name for errors. */
export class RpcArgs {
  readonly values: readonly ArgValue[];

  constructor(
    args: readonly Value[],
    private readonly signature: string,
  ) {
    this.values = args.map(valueOf);
  }

  /** At most `count` arguments. */
  atMost(count: number): void {
    if (this.values.length > count) throw new RpcError(`too many arguments (${this.values.length}): expected ${this.signature}`);
  }

  string(index: number, name: string): string {
    const value = this.values[index];
    if (value === undefined || value === null) throw new RpcError(`argument ${index + 1} (${name}) is missing: expected ${this.signature}`);
    if (typeof value !== "string" || value === "") throw new RpcError(`argument ${index + 1} (${name}) must be a non-empty string_value: expected ${this.signature}`);
    return value;
  }

  optionalString(index: number, name: string): string | null {
    const value = this.values[index];
    if (value === undefined || value === null || value === "") return null;
    return this.string(index, name);
  }

  /** A whole number, given as int_value, uint_value, a whole double_value or a string of digits. */
  integer(index: number, name: string): number {
    const value = this.values[index];
    if (value === undefined || value === null) throw new RpcError(`argument ${index + 1} (${name}) is missing: expected ${this.signature}`);
    let n = Number.NaN;
    if (typeof value === "bigint") n = Number(value);
    else if (typeof value === "number") n = value;
    else if (typeof value === "string" && /^\d+$/.test(value.trim())) n = Number(value);
    if (!Number.isSafeInteger(n) || n < 0) throw new RpcError(`argument ${index + 1} (${name}) must be a whole number (int_value): expected ${this.signature}`);
    return n;
  }
}

/** The MQTT topic of a reply: reply_to as given, or its MQTT form when it is OpenTera's dotted form. */
export function replyTopicOf(replyTo: string): string | null {
  if (replyTo === "") return null;
  if (replyTo.includes("/") || !replyTo.includes(".")) {
    return /[+#]/.test(replyTo) ? null : replyTo;
  }
  try {
    return toMqttTopic(replyTo);
  } catch {
    return null;
  }
}

export interface RpcOutcome {
  /** Where to publish the reply; null when the request is not answered (no usable or allowed reply_to). */
  readonly topic: string | null;
  readonly reply: string;
  readonly method: string;
  readonly ok: boolean;
  /** An unexpected failure: its whole message for the log line, found by the reference the caller got. */
  readonly internal?: PublicFailure;
}

/** Who may ask and where answers may go (docs/security.md). */
export interface RpcPolicy {
  /** Largest request accepted, in bytes; a larger one is dropped unread. */
  readonly maxRequestBytes: number;
  /** MQTT topic prefixes a reply may be published under; any other reply_to is refused. */
  readonly replyPrefixes: readonly string[];
  /** Reply topic prefixes of operators: they see and cancel every snapshot. */
  readonly operatorPrefixes: readonly string[];
}

/** The defaults of `tera-cdc run` (settings rpc-*): replies only to the snapshot command's topics, no operators. */
export const DEFAULT_RPC_POLICY: RpcPolicy = { maxRequestBytes: 16384, replyPrefixes: ["tera-cdc/cli/"], operatorPrefixes: [] };

function under(topic: string, prefixes: readonly string[]): boolean {
  return prefixes.some((prefix) => prefix !== "" && topic.startsWith(prefix));
}

/** JSON with 64-bit ids and counters as numbers when safe, strings otherwise. */
export function replyJson(value: unknown): string {
  return JSON.stringify(value, (_key, v) => (typeof v === "bigint" ? (Number.isSafeInteger(Number(v)) ? Number(v) : v.toString()) : v));
}

/**
 * Decodes and runs one request; never throws (a failing method becomes an error reply). A
 * request over the size limit is not decoded; one whose reply_to is outside the allowed prefixes
 * is not run (tera-cdc never publishes where a caller points it, event topics included).
 */
export async function handleRpc(bytes: Uint8Array, methods: Readonly<Record<string, RpcMethodSpec>>, policy: RpcPolicy): Promise<RpcOutcome> {
  if (bytes.length > policy.maxRequestBytes) {
    return { topic: null, reply: replyJson({ id: 0, error: `request of ${bytes.length} bytes is over the limit of ${policy.maxRequestBytes} (setting rpc-max-request-bytes)` }), method: "", ok: false };
  }
  const decoded = decodeRPCMessage(bytes);
  if (!decoded.ok) {
    return { topic: null, reply: replyJson({ id: 0, error: `not an RPCMessage: ${decoded.error.message}` }), method: "", ok: false };
  }
  const request = decoded.message;
  const method = request.method.slice(0, 64);
  const topic = replyTopicOf(request.replyTo);
  if (topic !== null && !under(topic, policy.replyPrefixes)) {
    const error = `reply_to ${JSON.stringify(topic.slice(0, 200))} is not under an allowed prefix (${policy.replyPrefixes.join(", ")}; setting rpc-reply-prefixes): not answered`;
    return { topic: null, reply: replyJson({ id: request.id, error }), method, ok: false };
  }
  const spec = Object.hasOwn(methods, request.method) ? methods[request.method] : undefined;
  if (!spec) {
    const error = `unknown method "${method}": available are ${Object.values(methods).map((m) => m.signature).join(", ")}`;
    return { topic, reply: replyJson({ id: request.id, error }), method, ok: false };
  }
  if (topic === null) return { topic, reply: replyJson({ id: request.id, error: "no usable reply_to" }), method, ok: false };
  try {
    const value = await spec.handler(new RpcArgs(request.args, spec.signature), { replyTopic: topic, operator: under(topic, policy.operatorPrefixes) });
    return { topic, reply: replyJson({ id: request.id, return_value: value ?? null }), method, ok: true };
  } catch (error) {
    if (error instanceof RpcError) return { topic, reply: replyJson({ id: request.id, error: error.message }), method, ok: false };
    // Never the error's own text: a database error can quote values the caller may not read.
    const failure = publicFailure(error);
    return { topic, reply: replyJson({ id: request.id, error: `${method} failed ${failureTag(failure)}` }), method, ok: false, internal: failure };
  }
}
