/**
 * The one file that touches mqtt.js's (and Node's socket's) undocumented internals. mqtt is pinned
 * to an exact version in package.json; `checkMqttInternals()` runs at start-up and fails with one
 * clear line if an internal is gone, and test/mqtt/internals.test.ts checks each use against a
 * real broker, so an upgrade breaks a test, not production.
 *
 * 1. `_sendPacket` (sendPuback): MQTT has no public API in mqtt.js for acknowledging a QoS 1
 *    message later. The client library handles a message first and acknowledges after; mqtt.js
 *    sends the PUBACK when `handleMessage`'s callback gets no error, so it is called with one
 *    (documented: the message is then not acknowledged) and the PUBACK is sent here.
 * 2. `_writev` / `allBuffers` (coalesceWrites): mqtt-packet writes one PUBLISH as ~40 small
 *    chunks between cork() and uncork(), and Node hands the kernel one iovec per chunk: a quarter
 *    of tera-cdc's CPU at 10,000 messages/s (issue 5 profile). Joining each corked batch into one
 *    buffer first is one copy of a few kilobytes instead. `allBuffers` is Node's own flag on the
 *    chunk list that says no chunk is a string.
 * 3. `options.reconnectPeriod` changed at run time, before mqtt.js's own `close` listener
 *    (backOffReconnects): mqtt.js reconnects every `reconnectPeriod` and reads it when it sets
 *    its timer after a close; a public `reconnect()` would drop the store of unacknowledged
 *    messages, which must be sent again after the reconnect.
 * 4. `options.servername` cleared at a lost connection (serverNameFollowsHost): with a list of
 *    brokers (mqtt.js `servers`), mqtt.js's TLS stream builder sets the TLS server name from the
 *    first broker's host once and keeps it, so the next broker's certificate would be checked
 *    against the first one's name.
 */
import { Socket } from "node:net";
import { MqttClient } from "mqtt";

/** Fails with one line naming what is missing, before anything connects. */
export function checkMqttInternals(): void {
  const missing: string[] = [];
  if (typeof (MqttClient.prototype as unknown as Partial<PacketWriter>)._sendPacket !== "function") missing.push("mqtt.js MqttClient._sendPacket");
  if (typeof (Socket.prototype as unknown as Partial<WritevSocket>)._writev !== "function") missing.push("Node net.Socket._writev");
  if (missing.length > 0) {
    throw new Error(`${missing.join(" and ")} not found: this mqtt or Node version differs from the one tera-cdc was built for (see src/mqtt/internals.ts); install the pinned mqtt version`);
  }
}

/** mqtt.js's internal writer (1). */
interface PacketWriter {
  _sendPacket(packet: { cmd: "puback"; messageId: number; reasonCode: number }, cb: undefined, cbStorePut: undefined, noStore: boolean): void;
}

/** Sends the PUBACK of a QoS 1 message whose `handleMessage` callback got an error (1). */
export function sendPuback(client: MqttClient, messageId: number): void {
  (client as unknown as PacketWriter)._sendPacket({ cmd: "puback", messageId, reasonCode: 0 }, undefined, undefined, true);
}

/** Larger corked batches (big payloads) are written as they are: copying them would cost more. */
const COALESCE_MAX_BYTES = 1024 * 1024;
type WritevChunks = { chunk: Buffer | string; encoding: BufferEncoding | "buffer" }[] & { allBuffers?: boolean };
interface WritevSocket {
  _writev: (chunks: WritevChunks, callback: (error?: Error | null) => void) => void;
  writableLength: number;
  teraCoalesced?: boolean;
}

/** Joins each corked batch of small chunks into one buffer on the client's socket (2). Idempotent per socket. */
export function coalesceWrites(client: MqttClient): void {
  const socket = client.stream as unknown as Partial<WritevSocket> | undefined;
  if (!socket || typeof socket._writev !== "function" || socket.teraCoalesced) return;
  const writev = socket._writev;
  socket.teraCoalesced = true;
  socket._writev = function (this: WritevSocket, chunks, callback) {
    if (chunks.length < 8 || this.writableLength > COALESCE_MAX_BYTES) return writev.call(this, chunks, callback);
    const joined: WritevChunks = [{ chunk: Buffer.concat(chunks.map((c) => (typeof c.chunk === "string" ? Buffer.from(c.chunk, c.encoding as BufferEncoding) : c.chunk))), encoding: "buffer" }];
    joined.allBuffers = true;
    return writev.call(this, joined, callback);
  };
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
