import { EventEmitter } from "node:events";
import { createClient, ErrorReply, type RedisClientType } from "redis";
import type { Logger } from "../../ops/log.js";
import type { DeliveryCallback, OutgoingMessage, SinkConnection } from "../../pipeline/ports.js";
import { redisClientOptions } from "./connection.js";

export interface RedisSinkOptions {
  /** `redis://[user:password@]host:port[/db]` or `rediss://` (TLS). */
  readonly url: string;
  /** Most PUBLISH commands awaiting Redis' answer. */
  readonly maxInFlight: number;
  /** CA certificate (PEM) for rediss:// with a private CA (--redis-ca). */
  readonly ca?: Buffer;
  readonly logger: Logger;
}

/** Redis' default `proto-max-bulk-len`: the largest argument it takes. */
const REDIS_MAX_BULK_BYTES = 512 * 1024 * 1024;
const FIRST_RECONNECT_DELAY_MS = 500;
const MAX_RECONNECT_DELAY_MS = 30_000;

interface Pending {
  readonly channel: string;
  readonly payload: Buffer;
  readonly done: DeliveryCallback;
  /** Which send this is: an answer to an older one (a lost connection's) does not settle it twice. */
  attempt: number;
}

/**
 * Publishes each event with `PUBLISH <channel> <TeraEvent bytes>` on one Redis connection, the
 * channel being the dotted OpenTera topic (the MQTT topic with "/" as "."), as OpenTera does.
 *
 * Delivery: a message counts as delivered only once Redis answered its PUBLISH. Messages whose
 * answer a lost connection took with it are sent again, in their order and before anything new,
 * when the connection is back (at least once, like MQTT QoS 1). One connection keeps the commit
 * order: Redis runs a connection's commands in the order they arrive.
 *
 * The window of unanswered commands is bounded (`hasRoom`), as the MQTT sink's is; while Redis is
 * away nothing new is taken, so the pipeline stops reading WAL.
 *
 * Events: `room`, `connected`, `disconnected` (the reason).
 */
export class RedisSink extends EventEmitter implements SinkConnection {
  readonly protocol = "Redis";
  private readonly client: RedisClientType;
  /** Unanswered messages in publish order (Map keeps insertion order). */
  private readonly pending = new Map<number, Pending>();
  private nextId = 0;
  private ready = false;
  private closing = false;
  private refilling = false;

  constructor(private readonly options: RedisSinkOptions) {
    super();
    this.client = createClient({
      ...redisClientOptions({
        url: options.url,
        ...(options.ca ? { ca: options.ca } : {}),
        reconnectDelayMs: (retries) => Math.min(FIRST_RECONNECT_DELAY_MS * 2 ** Math.min(retries, 10), MAX_RECONNECT_DELAY_MS),
      }),
      // Commands are sent only while connected (hasRoom); one issued as the connection drops fails
      // at once and is sent again by us, instead of waiting in a second, unbounded queue.
      disableOfflineQueue: true,
    }) as RedisClientType;
    this.client.on("ready", () => this.onReady());
    this.client.on("end", () => this.onLost("connection closed"));
    this.client.on("reconnecting", () => this.onLost("reconnecting"));
    this.client.on("error", (error: Error) => {
      if (this.closing) return;
      this.options.logger.warn(`redis error: ${error.message}`);
      this.onLost(error.message);
    });
  }

  get connected(): boolean {
    return this.ready;
  }

  get messagesInFlight(): number {
    return this.pending.size;
  }

  get maxMessageBytes(): number {
    return REDIS_MAX_BULK_BYTES;
  }

  get hasRoom(): boolean {
    if (!this.ready) return false;
    // Refill in bursts, as the MQTT sink does: one pause/resume of the WAL socket per burst.
    if (this.refilling) {
      if (this.pending.size > this.options.maxInFlight >> 1) return false;
      this.refilling = false;
    }
    return this.pending.size < this.options.maxInFlight;
  }

  /** Bytes of the PUBLISH command: RESP array header, three bulk strings. */
  messageBytes(message: OutgoingMessage): number {
    const channel = Buffer.byteLength(message.topic);
    return message.payload.length + channel + 7 + 2 * 16 + 4;
  }

  /** Connects; keeps trying with backoff while Redis is unreachable. Resolves at the first connection. */
  async connect(): Promise<void> {
    if (this.closing) throw new Error("sink closed");
    // close() while Redis is still unreachable ends the wait (a SIGTERM at start is a clean stop).
    const connected = new Promise<void>((resolve, reject) => {
      this.once("connected", resolve);
      this.once("closed", () => reject(new Error("sink closed")));
    });
    this.client.connect().catch((error: Error) => this.options.logger.warn(`redis unreachable: ${error.message}`));
    await connected;
  }

  publish(message: OutgoingMessage, done: DeliveryCallback): void {
    const payload = Buffer.isBuffer(message.payload)
      ? message.payload
      : Buffer.from(message.payload.buffer, message.payload.byteOffset, message.payload.byteLength);
    const id = this.nextId++;
    const entry: Pending = { channel: redisChannel(message.topic), payload, done, attempt: 0 };
    this.pending.set(id, entry);
    if (this.pending.size >= this.options.maxInFlight) this.refilling = true;
    if (this.ready) this.send(id, entry);
  }

  private send(id: number, entry: Pending): void {
    const attempt = ++entry.attempt;
    this.client.publish(entry.channel, entry.payload).then(
      () => this.settle(id, entry, undefined),
      (error: Error) => {
        // Redis refused the command itself (ACL, size): the pipeline's refusal rule decides.
        if (error instanceof ErrorReply) this.settle(id, entry, error);
        // A lost connection: kept, and sent again once connected (unless a newer send answers first).
        else if (entry.attempt === attempt && !this.closing) this.options.logger.debug(`PUBLISH unanswered (${error.message}); sent again after reconnecting`);
      },
    );
  }

  private settle(id: number, entry: Pending, error: Error | undefined): void {
    if (this.pending.get(id) !== entry) return;
    this.pending.delete(id);
    entry.done(error);
    const size = this.pending.size;
    if (size === this.options.maxInFlight >> 1 || size === 0) this.emit("room");
  }

  private onReady(): void {
    if (this.closing) return;
    // node-redis reports ready once the socket is open (RESP2 sends no handshake): a proxy or load
    // balancer in front of a Redis that is down accepts and drops at once. Ready means one answer.
    const epoch = ++this.readyEpoch;
    this.client.ping().then(
      () => {
        if (this.closing || epoch !== this.readyEpoch || !this.client.isReady) return;
        const restored = this.everConnected;
        this.everConnected = true;
        this.ready = true;
        if (restored) this.options.logger.info({ resending: this.pending.size }, "redis connection restored");
        // Everything unanswered goes again, in order, before anything new (commit order).
        for (const [id, entry] of this.pending) this.send(id, entry);
        this.emit("connected");
        this.emit("room");
      },
      () => {},
    );
  }

  private readyEpoch = 0;
  private everConnected = false;

  private onLost(reason: string): void {
    this.readyEpoch++;
    if (this.closing || !this.ready) return;
    this.ready = false;
    this.options.logger.warn(`redis connection lost (${reason}); reconnecting`);
    this.emit("disconnected", reason);
  }

  /** Waits until Redis answered every PUBLISH, at most `timeoutMs`. */
  async drained(timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (this.pending.size > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
    return this.pending.size === 0;
  }

  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    this.ready = false;
    this.emit("closed");
    if (this.client.isReady) {
      await Promise.race([this.client.close().catch(() => {}), new Promise((resolve) => setTimeout(resolve, 2000))]);
    }
    try {
      if (this.client.isOpen) this.client.destroy();
    } catch {
      // already closed
    }
  }
}

/** OpenTera's channel of an event: its dotted topic, the MQTT topic with "/" as "." (module/TeraServer/... → module.TeraServer...). */
export function redisChannel(mqttTopic: string): string {
  return mqttTopic.replaceAll("/", ".");
}
