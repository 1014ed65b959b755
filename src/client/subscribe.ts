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
import type { IPublishPacket } from "mqtt";
import { connectBroker, openClient, RECONNECT_STEADY_MS } from "../mqtt/connect.js";
import { sendPuback } from "../mqtt/internals.js";
import { redactUrl } from "../redact.js";
import { DATABASE_EVENTS_TOPIC_PREFIX, databaseEventTopic, toMqttTopic } from "../messages/index.js";
import { verify } from "../messages/signature.js";
import { CHANGE_OPS, type Change, type ChangeOp, changeKey, decodeChanges } from "./change.js";
import { contentDigest, DEFAULT_POSITION_LIMITS, PositionGuard, RecentKeys } from "./dedupe.js";

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

export interface SubscriptionStats {
  /** MQTT messages received (a batched message holds several changes). */
  messages: number;
  /** Changes handed to the handler. */
  delivered: number;
  /** Changes dropped as repeats of a change already handled. */
  duplicates: number;
  /** Changes skipped because their op is not in `ops`. */
  skipped: number;
  /** Changes whose handler threw. */
  failed: number;
  /** Messages that were not tera-cdc DatabaseEvents (reported to onError and acknowledged). */
  undecodable: number;
  /** With a signingKey: messages without a signature, dropped (reported to onError and acknowledged). */
  unsigned: number;
  /** With a signingKey: messages whose signature did not verify, dropped. */
  badSignatures: number;
  /** Messages whose position was far ahead of the newest seen (see positionLimits), dropped. */
  refusedPositions: number;
  /**
   * Changes whose (lsn, seq) was seen before with other content: an alert (reported to onError),
   * not a replay. The first content stays; this one is dropped.
   */
  conflicts: number;
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

/**
 * Whether the broker speaks MQTT 5 or only 3.1.1 (aedes, the embedded broker): a short probe
 * connection, refused with "unacceptable protocol version" by a 3.1.1 broker.
 */
export async function brokerProtocol(options: Pick<SubscribeOptions, "mqttUrl" | "mqtt">): Promise<4 | 5> {
  const { client, protocolVersion } = await connectBroker(options.mqttUrl, {}, {
    ...options.mqtt,
    clientId: `tera-cdc-probe-${randomBytes(6).toString("hex")}`,
    clean: true,
    reconnectPeriod: 0,
    properties: undefined,
  });
  client.on("error", () => {});
  client.end(true);
  return protocolVersion;
}

/** The MQTT topic filters for the options: the given topics, one per model, or every model; shared when a group is given. */
export function topicFilters(options: Pick<SubscribeOptions, "models" | "group" | "topics">): string[] {
  const models = options.models ?? [];
  const topics = options.topics?.length ? [...options.topics] : models.length === 0 ? [`${toMqttTopic(DATABASE_EVENTS_TOPIC_PREFIX)}/+`] : models.map((model) => toMqttTopic(databaseEventTopic(model)));
  if (options.group === undefined) return topics;
  if (options.group === "" || /[/+#]/.test(options.group)) {
    throw new Error(`group ${JSON.stringify(options.group)} is not a valid shared subscription name: use letters, digits, - or _`);
  }
  return topics.map((topic) => `$share/${options.group}/${topic}`);
}

interface Received {
  readonly packet: IPublishPacket;
  /** The connection it came on: an acknowledgement is only valid on that one. */
  readonly stream: unknown;
  readonly receivedAt: Date;
}

/** Handles a batch of new changes; false means "not handled": stop without acknowledging. */
type Processor = (changes: Change[], stats: SubscriptionStats) => Promise<boolean>;

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
  const recent = new RecentKeys(options.dedupeWindow ?? 100_000);
  const stats: SubscriptionStats = { messages: 0, delivered: 0, duplicates: 0, skipped: 0, failed: 0, undecodable: 0, unsigned: 0, badSignatures: 0, refusedPositions: 0, conflicts: 0 };
  const guard = new PositionGuard(options.positionLimits ?? DEFAULT_POSITION_LIMITS);
  const inbox: Received[] = [];
  let closing = false;
  let working: Promise<void> = Promise.resolve();

  // The handler must be in place before the first CONNACK: a persistent session's queued messages
  // follow it at once, and mqtt.js would otherwise acknowledge them unseen.
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
  // A QoS 1 message is acknowledged later, after its changes are handled (see acknowledge). mqtt.js
  // handles one packet at a time and sends the PUBACK when this callback gets no error; passing one
  // lets it read the next packet without acknowledging this one.
  const deferAck = new Error("acknowledged after handling");
  client.handleMessage = (packet, callback) => {
    if (closing) {
      callback(deferAck);
      return;
    }
    inbox.push({ packet, stream: client.stream, receivedAt: new Date() });
    callback(packet.qos > 0 ? deferAck : undefined);
    kick();
  };

  let running = false;
  const kick = () => {
    if (running || closing) return;
    running = true;
    working = work()
      .catch((error: unknown) => report(asError(error)))
      .finally(() => {
        running = false;
        // A message may have arrived between the loop's last check and here.
        if (inbox.length > 0) kick();
      });
  };

  const acknowledge = (received: Received) => {
    const messageId = received.packet.messageId;
    if (received.packet.qos === 0 || messageId === undefined) return;
    // On a newer connection the same packet id may name another message; the broker re-sends this one there.
    if (!client.connected || client.stream !== received.stream) return;
    sendPuback(client, messageId);
  };

  const work = async () => {
    while (inbox.length > 0 && !closing) {
      const taken: Received[] = [];
      const fresh: Change[] = [];
      while (inbox.length > 0 && fresh.length < maxBatch) {
        const received = inbox.shift()!;
        taken.push(received);
        stats.messages++;
        const { topic } = received.packet;
        const payload = received.packet.payload as Buffer;
        const props = received.packet.properties?.userProperties as Record<string, string | string[]> | undefined;
        if (options.signingKey !== undefined) {
          const verdict = verify(options.signingKey, topic, payload, props);
          if (!verdict.ok) {
            if (verdict.reason === "unsigned") stats.unsigned++;
            else stats.badSignatures++;
            report(new Error(`message on ${topic} dropped: ${verdict.reason === "unsigned" ? "not signed" : verdict.detail} (not from the tera-cdc holding the signing key)`));
            continue;
          }
        }
        let decoded: Change[];
        try {
          decoded = decodeChanges(topic, payload, props, received.receivedAt);
        } catch (error) {
          stats.undecodable++;
          report(asError(error));
          continue;
        }
        // Over MQTT 3.1.1 a change has no position to check or dedupe by.
        const refusal = decoded.length > 0 && decoded[0]!.lsn !== "" ? guard.check(decoded[0]!.lsnValue) : null;
        if (refusal !== null) {
          stats.refusedPositions++;
          report(new Error(`message on ${topic} at lsn ${decoded[0]!.lsn} dropped: ${refusal}`));
          continue;
        }
        for (const change of decoded) {
          // A snapshot row restates a row as read at injection time: a replay may carry newer values
          // and another time at the same position, which is no conflict.
          const digest = change.snapshot !== null ? "snapshot" : contentDigest([change.model, change.op, change.objectJson, change.commitTime, change.table]);
          const recurrence = change.lsn === "" ? "new" : recent.check(changeKey(change), digest);
          if (recurrence === "repeat") stats.duplicates++;
          else if (recurrence === "conflict") {
            stats.conflicts++;
            report(new Error(`ALERT: lsn ${change.lsn} seq ${change.seq} came again with different content (${change.model} ${change.op}): kept the first, dropped this one; a second publisher is writing on ${topic}`), change);
          } else if (!ops.has(change.op)) stats.skipped++;
          else fresh.push(change);
        }
      }
      if (fresh.length > 0) {
        const handled = await processChanges(fresh, stats);
        if (!handled) {
          closing = true;
          return;
        }
        stats.delivered += fresh.length;
      }
      for (const received of taken) acknowledge(received);
    }
  };

  try {
    await new Promise<void>((resolve, reject) => {
      client.once("connect", () => resolve());
      client.once("error", reject);
    });
  } catch (error) {
    closing = true;
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
      closing = true;
      await working;
      await client.endAsync(false);
    },
  };
}

function errorReporter(options: SubscribeOptions): (error: Error, change?: Change) => void {
  return (
    options.onError ??
    ((error, change) => {
      const where = change ? ` (${change.model} ${change.op} lsn ${change.lsn} seq ${change.seq})` : "";
      process.stderr.write(`tera-cdc client: ${error.message.split("\n")[0]}${where}\n`);
    })
  );
}

function asError(error: unknown): Error {
  return error instanceof Error ? error : new Error(String(error));
}
