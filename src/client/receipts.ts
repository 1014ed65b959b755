import type mqtt from "mqtt";
import type { IPublishPacket } from "mqtt";
import { sendPuback } from "../mqtt/internals.js";
import type { Change } from "./change.js";
import { asError } from "./report.js";
import type { SubscriptionStats } from "./stats.js";

/** A message as it came, kept until its changes are handled and it is acknowledged. */
export interface Received {
  readonly packet: IPublishPacket;
  /** The connection it came on: an acknowledgement is only valid on that one. */
  readonly stream: unknown;
  readonly receivedAt: Date;
}

export interface ReceiptQueueOptions {
  /** Most new changes handed to `process` at once. */
  readonly maxBatch: number;
  /** The changes of a message to hand on (the rest are counted and dropped by the screen). */
  readonly freshChanges: (received: Received) => Change[];
  /** Handles a batch of new changes; false means "not handled": stop without acknowledging. */
  readonly process: (changes: Change[]) => Promise<boolean>;
  /** Counts messages received and changes delivered. */
  readonly stats: SubscriptionStats;
  readonly report: (error: Error) => void;
}

/**
 * The messages received and not yet acknowledged, in order: batches of their new changes are
 * handled one at a time, and a message is acknowledged (PUBACK) only after every change of it is
 * handled, on the connection it came on.
 */
export class ReceiptQueue {
  private readonly inbox: Received[] = [];
  private closing = false;
  private running = false;
  private working: Promise<void> = Promise.resolve();

  /**
   * Takes over the client's incoming messages. Call it before the first CONNACK: a persistent
   * session's queued messages follow it at once, and mqtt.js would otherwise acknowledge them unseen.
   */
  constructor(
    private readonly client: mqtt.MqttClient,
    private readonly options: ReceiptQueueOptions,
  ) {
    // A QoS 1 message is acknowledged later, after its changes are handled (see acknowledge). mqtt.js
    // handles one packet at a time and sends the PUBACK when this callback gets no error; passing one
    // lets it read the next packet without acknowledging this one.
    const deferAck = new Error("acknowledged after handling");
    client.handleMessage = (packet, callback) => {
      if (this.closing) {
        callback(deferAck);
        return;
      }
      this.inbox.push({ packet, stream: client.stream, receivedAt: new Date() });
      callback(packet.qos > 0 ? deferAck : undefined);
      this.kick();
    };
  }

  /** Takes no more messages; resolves once the batch in progress is handled and acknowledged. */
  close(): Promise<void> {
    this.closing = true;
    return this.working;
  }

  private kick(): void {
    if (this.running || this.closing) return;
    this.running = true;
    this.working = this.work()
      .catch((error: unknown) => this.options.report(asError(error)))
      .finally(() => {
        this.running = false;
        // A message may have arrived between the loop's last check and here.
        if (this.inbox.length > 0) this.kick();
      });
  }

  private acknowledge(received: Received): void {
    const messageId = received.packet.messageId;
    if (received.packet.qos === 0 || messageId === undefined) return;
    // On a newer connection the same packet id may name another message; the broker re-sends this one there.
    if (!this.client.connected || this.client.stream !== received.stream) return;
    sendPuback(this.client, messageId);
  }

  private async work(): Promise<void> {
    const { stats, maxBatch } = this.options;
    while (this.inbox.length > 0 && !this.closing) {
      const taken: Received[] = [];
      const fresh: Change[] = [];
      while (this.inbox.length > 0 && fresh.length < maxBatch) {
        const received = this.inbox.shift()!;
        taken.push(received);
        stats.messages++;
        for (const change of this.options.freshChanges(received)) fresh.push(change);
      }
      if (fresh.length > 0) {
        const handled = await this.options.process(fresh);
        if (!handled) {
          this.closing = true;
          return;
        }
        stats.delivered += fresh.length;
      }
      for (const received of taken) this.acknowledge(received);
    }
  }
}
