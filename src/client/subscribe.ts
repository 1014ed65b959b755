/**
 * Typed subscription to tera-cdc's DatabaseEvents on MQTT 5 at QoS 1.
 *
 * Each MQTT message is acknowledged (PUBACK) only after the handler has finished with every change
 * in it, so with a persistent session (stable clientId, clean start off, a session expiry) a
 * consumer that crashes or disconnects gets the unfinished and the missed messages again when it
 * comes back. Repeats, whether the broker's re-sends or tera-cdc's replays after a restart, are
 * dropped by (lsn, seq) within a bounded window.
 */
import { randomBytes } from "node:crypto";
import type mqtt from "mqtt";
import { openClient, RECONNECT_STEADY_MS } from "../mqtt/connect.js";
import { redactUrl } from "../redact.js";
import { CHANGE_OPS, type Change, type ChangeOp } from "./change.js";
import { brokerProtocol } from "./protocol-probe.js";
import { ReceiptQueue } from "./receipts.js";
import { asError, errorReporter } from "./report.js";
import { MessageScreen } from "./screen.js";
import { emptyStats, type SubscriptionStats } from "./stats.js";
import { topicFilters } from "./topics.js";

export interface SubscribeOptions {
  /** mqtt://, mqtts://, ws:// or wss:// URL of the broker tera-cdc publishes to. */
  readonly mqttUrl: string;
  /** OpenTera model names to receive (e.g. ["device", "user"]); all models when omitted. */
  readonly models?: readonly string[];
  /**
   * MQTT topic filters to subscribe to instead of the model topics, for tables that `run` publishes
   * under a `topic:` template of their own; `models` is then ignored.
   */
  readonly topics?: readonly string[];
  /** Operations to hand to the handler; all four when omitted. Others are acknowledged and skipped. */
  readonly ops?: readonly ChangeOp[];
  /** Join MQTT 5 shared subscription group `$share/<group>/...`: the replicas of a service split the stream. */
  readonly group?: string;
  /** MQTT client id; give a stable one for a persistent session. */
  readonly clientId?: string;
  /**
   * "persistent" keeps the broker-side session (subscriptions and QoS 1 messages queued while
   * disconnected) for `sessionExpirySeconds`; needs a clientId. Default: persistent when a clientId is
   * given, else clean.
   */
  readonly session?: "persistent" | "clean";
  /** How long the broker keeps a persistent session after a disconnect. Default one day. */
  readonly sessionExpirySeconds?: number;
  /** How many recent (lsn, seq) keys are remembered to drop repeats. Default 100,000. */
  readonly dedupeWindow?: number;
  /** Most messages the broker may send before they are acknowledged (MQTT 5 Receive Maximum). Default 1,000. */
  readonly maxUnacked?: number;
  /**
   * MQTT protocol: 5 (default when the broker speaks it) or 4 (3.1.1, as the embedded broker of
   * `npm start`). Found out at connect when not given. Over 3.1.1 there are no user properties:
   * changes have no position (lsn "", no dedupe) and shared subscriptions are not available.
   */
  readonly protocolVersion?: 4 | 5;
  /**
   * The key `tera-cdc run` signs with (--signing-key-file; read it with `readSigningKey`). Given
   * one, only messages whose `sig` property verifies are handled; unsigned and wrongly signed ones
   * are counted (stats.unsigned, stats.badSignatures), reported to onError and acknowledged. Needs
   * an MQTT 5 broker (the signature is a user property). See docs/security.md.
   */
  readonly signingKey?: Uint8Array;
  /**
   * How far ahead of the newest position seen a message may be: `leadBytes` of WAL plus
   * `bytesPerSecond` for each second since (default 1 TiB + 1 GiB/s). Further ahead is refused
   * (stats.refusedPositions): it cannot come from the database being followed.
   */
  readonly positionLimits?: { readonly leadBytes: bigint; readonly bytesPerSecond: bigint };
  /** Extra mqtt.js options: username, password, ca, cert, key, keepalive, reconnectPeriod... */
  readonly mqtt?: mqtt.IClientOptions;
  /**
   * Called for a handler's error (with the change), an undecodable message and a connection error.
   * The subscription goes on either way. Default: one line on stderr.
   */
  readonly onError?: (error: Error, change?: Change) => void;
}

export interface Subscription {
  readonly clientId: string;
  /** The MQTT topic filters subscribed to. */
  readonly topics: readonly string[];
  readonly stats: Readonly<SubscriptionStats>;
  /** Publishes on the subscription's connection at QoS 1 (e.g. to a dead-letter topic); resolves once the broker has it. */
  publish(topic: string, payload: string | Buffer, userProperties?: Record<string, string>): Promise<void>;
  /**
   * Lets the change in progress finish, acknowledges what was handled and disconnects. Messages not
   * handled yet stay unacknowledged: a persistent session gets them on its next connection.
   */
  close(): Promise<void>;
}

export type ChangeHandler = (change: Change) => unknown;
export type BatchHandler = (changes: Change[]) => Promise<unknown>; // false: not handled, see subscribeBatches

/**
 * Calls `handler` once per change, one change at a time, in the order received; an async handler
 * is awaited before the next change and before the message is acknowledged.
 */
export function subscribe(options: SubscribeOptions, handler: ChangeHandler): Promise<Subscription> {
  const report = errorReporter(options);
  return open(options, 1, async (changes, stats) => {
    for (const change of changes) {
      try {
        await handler(change);
      } catch (error) {
        stats.failed++;
        report(asError(error), change);
      }
    }
    return true;
  });
}

/**
 * Calls `handler` with up to `maxBatch` changes at a time, as many as have arrived, for sinks
 * that write in bulk; the messages are acknowledged only after the handler's promise resolves. A
 * rejected promise is reported to onError and the messages are acknowledged all the same, so a
 * sink that must not lose changes retries inside its handler. A handler that resolves to `false`
 * (shutting down while its store is unreachable) stops the subscription without acknowledging the
 * batch: a persistent session gets those messages again on its next connection.
 */
export function subscribeBatches(options: SubscribeOptions & { maxBatch?: number }, handler: BatchHandler): Promise<Subscription> {
  const report = errorReporter(options);
  return open(options, options.maxBatch ?? 500, async (changes, stats) => {
    try {
      if ((await handler(changes)) === false) return false;
    } catch (error) {
      stats.failed += changes.length;
      report(asError(error));
    }
    return true;
  });
}

/**
 * The same stream as an async iterator: `for await (const change of changes(options)) { ... }`.
 * A change is acknowledged when the loop asks for the next one, so a change whose loop body was
 * cut short by a crash comes again. Leaving the loop (break/return/throw) closes the subscription.
 * `.subscription` resolves once subscribed.
 */
export function changes(options: SubscribeOptions): AsyncIterableIterator<Change> & { close(): Promise<void>; subscription: Promise<Subscription> } {
  type Pending = { change: Change; settle: (handled: boolean) => void };
  let pending: Pending | null = null;
  let handedOut: Pending | null = null;
  let waiting: { resolve: (r: IteratorResult<Change>) => void; reject: (e: Error) => void } | null = null;
  let failure: Error | null = null;
  let closed = false;
  const hand = () => {
    if (waiting && failure) {
      waiting.reject(failure);
      waiting = null;
    } else if (waiting && pending) {
      handedOut = pending;
      pending = null;
      waiting.resolve({ value: handedOut.change, done: false });
      waiting = null;
    }
  };
  const subscription = open(options, 1, async (batch) => {
    for (const change of batch) {
      const handled = await new Promise<boolean>((settle) => {
        if (closed) return settle(false);
        pending = { change, settle };
        hand();
      });
      if (!handled) return false;
    }
    return true;
  });
  subscription.catch((error: Error) => {
    failure = error;
    hand();
  });
  const finishHandedOut = () => {
    handedOut?.settle(true);
    handedOut = null;
  };
  const close = async () => {
    if (closed) return;
    closed = true;
    finishHandedOut();
    pending?.settle(false);
    pending = null;
    waiting?.resolve({ value: undefined, done: true });
    waiting = null;
    await (await subscription.catch(() => null))?.close();
  };
  const iterator = {
    next(): Promise<IteratorResult<Change>> {
      if (closed) return Promise.resolve({ value: undefined, done: true });
      finishHandedOut();
      return new Promise<IteratorResult<Change>>((resolve, reject) => {
        waiting = { resolve, reject };
        hand();
      });
    },
    async return(): Promise<IteratorResult<Change>> {
      await close();
      return { value: undefined, done: true };
    },
    [Symbol.asyncIterator]() {
      return iterator;
    },
    close,
    /** Resolves once subscribed (its stats, topics), rejects if the connection or subscription failed. */
    subscription,
  };
  return iterator;
}

/** Handles a batch of new changes with the subscription's counters; false: stop without acknowledging. */
type Processor = (changes: Change[], stats: SubscriptionStats) => Promise<boolean>;

/** Connects, subscribes and hands the new changes to `processChanges`, composing the parts of client/. */
async function open(options: SubscribeOptions, maxBatch: number, processChanges: Processor): Promise<Subscription> {
  const report = errorReporter(options);
  const ops = new Set<ChangeOp>(options.ops ?? CHANGE_OPS);
  for (const op of ops) {
    if (!CHANGE_OPS.includes(op)) throw new Error(`op ${JSON.stringify(op)} is not a change operation: use ${CHANGE_OPS.join(", ")}`);
  }
  const topics = topicFilters(options);
  const session = options.session ?? (options.clientId ? "persistent" : "clean");
  if (session === "persistent" && !options.clientId) {
    throw new Error("a persistent session needs a stable clientId: give clientId, or session: \"clean\"");
  }
  if (!Number.isInteger(maxBatch) || maxBatch < 1) throw new Error(`maxBatch ${maxBatch} is not a whole number >= 1`);
  const clientId = options.clientId ?? `tera-cdc-client-${randomBytes(6).toString("hex")}`;
  const stats = emptyStats();
  const screen = new MessageScreen({ signingKey: options.signingKey, ops, dedupeWindow: options.dedupeWindow ?? 100_000, positionLimits: options.positionLimits, stats, report });

  const protocolVersion = options.protocolVersion ?? (await brokerProtocol(options));
  if (protocolVersion === 4 && options.group !== undefined) {
    throw new Error("shared subscriptions (group) need an MQTT 5 broker; this broker speaks only MQTT 3.1.1");
  }
  if (protocolVersion === 4 && options.signingKey !== undefined) {
    throw new Error("a signing key needs an MQTT 5 broker (the signature is a user property); this broker speaks only MQTT 3.1.1, so no message could be verified");
  }
  const client = openClient(options.mqttUrl, {}, protocolVersion, {
    reconnectPeriod: RECONNECT_STEADY_MS,
    ...options.mqtt,
    clientId,
    clean: session === "clean",
    properties:
      protocolVersion === 5
        ? {
            ...options.mqtt?.properties,
            sessionExpiryInterval: session === "persistent" ? (options.sessionExpirySeconds ?? 86_400) : 0,
            receiveMaximum: options.maxUnacked ?? 1000,
          }
        : undefined,
  });
  // In place before the first CONNACK (see ReceiptQueue): a persistent session's queued messages follow it at once.
  const receipts = new ReceiptQueue(client, { maxBatch, freshChanges: (received) => screen.freshChanges(received), process: (changes) => processChanges(changes, stats), stats, report });

  try {
    await new Promise<void>((resolve, reject) => {
      client.once("connect", () => resolve());
      client.once("error", reject);
    });
  } catch (error) {
    void receipts.close();
    await client.endAsync(true).catch(() => {});
    throw new Error(`cannot connect to the MQTT broker ${redactUrl(options.mqttUrl)}: ${asError(error).message}`);
  }
  client.on("error", (error) => report(new Error(`MQTT connection: ${error.message}`)));

  try {
    const granted = await client.subscribeAsync([...topics], { qos: 1 });
    const refused = granted.filter((g) => g.qos >= 0x80);
    if (refused.length > 0) {
      throw new Error(`the broker refused the subscription to ${refused.map((g) => `${g.topic} (reason ${g.qos})`).join(", ")}: check its ACL and that it supports MQTT 5 shared subscriptions`);
    }
  } catch (error) {
    await client.endAsync(true).catch(() => {});
    throw asError(error);
  }

  return {
    clientId,
    topics,
    stats,
    async publish(topic, payload, userProperties) {
      await client.publishAsync(topic, payload, { qos: 1, ...(protocolVersion === 5 && userProperties ? { properties: { userProperties } } : {}) });
    },
    async close() {
      await receipts.close();
      await client.endAsync(false);
    },
  };
}
