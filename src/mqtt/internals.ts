/**
 * The one file that touches mqtt.js's undocumented internals. mqtt is pinned
 * to an exact version in package.json; `checkMqttInternals()` runs at start-up and fails with one
 * clear line if an internal is gone, and test/mqtt/adapter.test.ts checks each use against a
 * real broker, so an upgrade breaks a test, not production.
 *
 * 1. `_sendPacket` (sendPuback): MQTT has no public API in mqtt.js for acknowledging a QoS 1
 *    message later. The client library handles a message first and acknowledges after; mqtt.js
 *    sends the PUBACK when `handleMessage`'s callback gets no error, so it is called with one
 *    (documented: the message is then not acknowledged) and the PUBACK is sent here.
 * 2. `_writePacket` (writePublishesWith): mqtt.js hands every packet it sends, a PUBLISH it sends
 *    again after a reconnect included, to this one method, which encodes it with mqtt-packet. The
 *    sink's PUBLISH packets are encoded by src/mqtt/publish-packet.ts instead (one buffer, the
 *    transaction's properties encoded once); mqtt.js still assigns the packet ids, keeps the
 *    unacknowledged packets and handles the PUBACKs. mqtt.js has no documented hook between
 *    "this packet" and "these bytes"; its stream builder only sees the bytes. With one write per
 *    PUBLISH, the `_writev` patch that joined mqtt-packet's forty chunks per packet is gone.
 * 3. `options.reconnectPeriod` changed at run time, before mqtt.js's own `close` listener
 *    (backOffReconnects): mqtt.js reconnects every `reconnectPeriod` and reads it when it sets
 *    its timer after a close; a public `reconnect()` would drop the store of unacknowledged
 *    messages, which must be sent again after the reconnect.
 * 4. `options.servername` cleared at a lost connection (serverNameFollowsHost): with a list of
 *    brokers (mqtt.js `servers`), mqtt.js's TLS stream builder sets the TLS server name from the
 *    first broker's host once and keeps it, so the next broker's certificate would be checked
 *    against the first one's name.
 * 5. `messageIdProvider`, `outgoing`, `outgoingStore` and `_writePacket` (publishQos1): mqtt.js's
 *    `publish()` deep-copies every packet (rfdc, payload included) before it stores it, and builds
 *    an options object and a closure per message: with its garbage, the largest
 *    share of mqtt.js's CPU on the one-event path (issue 18 profile). The sink's packets are built here and never changed afterwards,
 *    so they are stored as they are, with mqtt.js's own packet ids, its `outgoing` callback table
 *    (its PUBACK handler calls back and frees the id) and its outgoing store (sent again after a
 *    reconnect). Whenever mqtt.js's `publish()` would do more than that (not connected, stored
 *    packets being sent again or queued behind them, disconnecting, topic aliases, no free id),
 *    the message goes through `publish()` itself.
 */
import { MqttClient } from "mqtt";
import type mqtt from "mqtt";
import type { PublishPacket } from "./publish-packet.js";

let internalsChecked = false;

/** Fails with one line naming what is missing, before anything connects. Checks once per process. */
export function checkMqttInternals(): void {
  if (internalsChecked) return;
  const missing: string[] = [];
  if (typeof (MqttClient.prototype as unknown as Partial<PacketWriter>)._sendPacket !== "function") missing.push("mqtt.js MqttClient._sendPacket");
  if (typeof (MqttClient.prototype as unknown as Partial<PacketStreamWriter>)._writePacket !== "function") missing.push("mqtt.js MqttClient._writePacket");
  // The per-client state publishQos1 uses (5), on a client that never connects.
  const probe = new MqttClient(() => {
    throw new Error("never connects");
  }, { manualConnect: true, protocolVersion: 5 }) as unknown as Partial<PublishInternals>;
  if (typeof probe.messageIdProvider?.allocate !== "function" || typeof probe.messageIdProvider?.deallocate !== "function") missing.push("mqtt.js MqttClient.messageIdProvider");
  if (typeof probe.outgoing !== "object" || probe.outgoing === null) missing.push("mqtt.js MqttClient.outgoing");
  if (typeof probe.outgoingStore?.put !== "function") missing.push("mqtt.js MqttClient.outgoingStore");
  if (!Array.isArray(probe._storeProcessingQueue) || typeof probe._storeProcessing !== "boolean") missing.push("mqtt.js MqttClient._storeProcessing");
  if (missing.length > 0) {
    throw new Error(`${missing.join(" and ")} not found: this mqtt version differs from the one tera-cdc was built for (see src/mqtt/internals.ts); install the pinned mqtt version`);
  }
  internalsChecked = true;
}

/** mqtt.js's internal writer (1). */
interface PacketWriter {
  _sendPacket(packet: { cmd: "puback"; messageId: number; reasonCode: number }, cb: undefined, cbStorePut: undefined, noStore: boolean): void;
}

/** Sends the PUBACK of a QoS 1 message whose `handleMessage` callback got an error (1). */
export function sendPuback(client: MqttClient, messageId: number): void {
  (client as unknown as PacketWriter)._sendPacket({ cmd: "puback", messageId, reasonCode: 0 }, undefined, undefined, true);
}

/** The delay before mqtt.js's next reconnection attempt (3); takes effect at the next lost connection. */
export function setReconnectPeriod(client: MqttClient, ms: number): void {
  client.options.reconnectPeriod = ms;
}

/** Runs `listener` at a lost connection before mqtt.js schedules its next attempt (3), so it can set the period. */
export function beforeReconnectScheduled(client: MqttClient, listener: () => void): void {
  client.prependListener("close", listener);
}

/** With a list of brokers: each reconnection checks the certificate against its own broker's host name (4). */
export function serverNameFollowsHost(client: MqttClient): void {
  client.prependListener("close", () => {
    delete (client.options as { servername?: string }).servername;
  });
}

/** mqtt.js's last step before the socket (2): emits `packetsend`, writes, calls back (at `drain` when the write said wait). */
interface PacketStreamWriter {
  _writePacket(packet: { cmd: string }, cb?: () => void): void;
  stream: { cork(): void; uncork(): void; write(chunk: Buffer): boolean; once(event: "drain", listener: () => void): void };
  noop: () => void;
  emit(event: "packetsend", packet: unknown): boolean;
  options: { protocolVersion?: number };
  teraPublishEncoder?: boolean;
}

/** Encodes a PUBLISH packet, or returns null to leave it to mqtt-packet (src/mqtt/publish-packet.ts). */
export type PublishBytes = (packet: PublishPacket, protocolVersion: number) => Buffer[] | null;

/**
 * Makes the client write its PUBLISH packets with `encode` (2). Writes of one tick go out in one
 * system call, as mqtt-packet's do: the socket is corked at the first and uncorked on the next tick.
 * Idempotent per client.
 */
export function writePublishesWith(client: MqttClient, encode: PublishBytes): void {
  const internal = client as unknown as PacketStreamWriter;
  if (internal.teraPublishEncoder) return;
  internal.teraPublishEncoder = true;
  const writePacket = internal._writePacket;
  let corked: PacketStreamWriter["stream"] | null = null;
  const uncork = () => {
    const stream = corked;
    corked = null;
    stream?.uncork();
  };
  internal._writePacket = function (this: PacketStreamWriter, packet, cb) {
    if (packet.cmd !== "publish") return writePacket.call(this, packet, cb);
    const chunks = encode(packet as PublishPacket, this.options.protocolVersion ?? 4);
    if (chunks === null) return writePacket.call(this, packet, cb);
    this.emit("packetsend", packet);
    const stream = this.stream;
    if (corked !== stream) {
      if (corked !== null) corked.uncork();
      stream.cork();
      corked = stream;
      process.nextTick(uncork);
    }
    let written = true;
    for (const chunk of chunks) written = stream.write(chunk);
    if (!written && cb && cb !== this.noop) stream.once("drain", cb);
    else cb?.();
  };
}

/** mqtt.js's per-client publishing state (5). */
interface PublishInternals {
  connected: boolean;
  disconnecting: boolean;
  _storeProcessing: boolean;
  _storeProcessingQueue: unknown[];
  messageIdProvider: { allocate(): number | null; deallocate(id: number): void };
  outgoing: Record<number, { volatile: boolean; cmd: "publish"; cb: (error: Error | null | undefined) => void } | undefined>;
  outgoingStore: { put(packet: PublishPacket, cb: (error?: Error) => void): unknown };
  _writePacket(packet: PublishPacket, cb?: () => void): void;
  options: { autoUseTopicAlias?: boolean; autoAssignTopicAlias?: boolean };
}

/**
 * Publishes at QoS 1 as mqtt.js's `publish()` does, without its per-message copy (5): a packet id
 * of mqtt.js's, the packet kept in its outgoing store (sent again after a reconnect until its
 * PUBACK), written through the client's writer, and `done` called by mqtt.js's PUBACK handler
 * (null, or an error for a PUBACK with a failure reason code). `topic`, `payload` and `properties` must
 * not change afterwards: the stored packet is them. Falls back to `publish()` whenever that
 * would queue, store offline or refuse.
 */
export function publishQos1(client: MqttClient, topic: string, payload: Buffer, properties: PublishPacket["properties"], done: (error: Error | null | undefined) => void): void {
  const internal = client as unknown as PublishInternals;
  const messageId =
    internal.connected && !internal.disconnecting && !internal._storeProcessing && internal._storeProcessingQueue.length === 0 && !internal.options.autoUseTopicAlias && !internal.options.autoAssignTopicAlias
      ? internal.messageIdProvider.allocate()
      : null;
  if (messageId === null) {
    client.publish(topic, payload, properties === undefined ? { qos: 1 } : { qos: 1, properties: properties as mqtt.IClientPublishOptions["properties"] }, done);
    return;
  }
  const packet: PublishPacket = properties === undefined
    ? { cmd: "publish", topic, payload, qos: 1, retain: false, messageId, dup: false }
    : { cmd: "publish", topic, payload, qos: 1, retain: false, messageId, dup: false, properties };
  internal.outgoing[messageId] = { volatile: false, cmd: "publish", cb: done };
  internal.outgoingStore.put(packet, (error) => {
    if (error) {
      delete internal.outgoing[messageId];
      internal.messageIdProvider.deallocate(messageId);
      done(error);
      return;
    }
    internal._writePacket(packet);
  });
}
