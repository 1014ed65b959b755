import type { Socket } from "node:net";
import * as ws from "ws";
import type { WebSocket } from "ws";

/**
 * Pre-framed WebSocket writes: the one file that reaches past ws's typed API (issue 18 point 5).
 *
 * The gateway sends the same event to thousands of clients. `socket.send()` frames the payload
 * again for every client (header, length, a copy) and makes two writes per event; here each
 * event's frames are built once with `WebSocket.Sender.frame` (documented in ws's README, "How to
 * send frames", but absent from @types/ws) and each client gets one write of the shared bytes to
 * its TCP socket. That socket is ws's `_socket`, and writing to it directly is sound only while
 * ws's own sender is idle (no compression or Blob read queued): permessage-deflate is off on the
 * gateway's server, and `rawWritable` checks the sender's state before every write; when it does
 * not hold, the frames go through `send()`, which queues behind ws's pending work.
 * `checkWireSupport()` runs at start-up and fails with a message naming this file if ws changed
 * shape; test/gateway/wire.test.ts is the contract test against a real ws client.
 */

interface SenderStatic {
  frame(data: Buffer, options: { fin: boolean; opcode: number; mask: boolean; readOnly: boolean; rsv1: boolean }): Buffer[];
}

/** ws's internals read here (ws 8): the TCP socket and the sender's queue. */
interface WebSocketInternals {
  _socket?: Socket | null;
  _sender?: { _state?: number; _queue?: unknown[] } | null;
}

const OPCODE_TEXT = 0x1;
const OPCODE_BINARY = 0x2;
/** ws's sender state when nothing is being compressed or read (lib/sender.js DEFAULT). */
const SENDER_IDLE = 0;

// ws's ES module entry exports Sender by name (its CommonJS entry as WebSocket.Sender).
const Sender = (ws as unknown as { Sender?: SenderStatic }).Sender;
const NO_SENDER = "the installed ws has no Sender.frame: src/gateway/wire.ts needs ws 8 (see package.json)";

/** Throws when the installed ws lacks what this file uses (run once at gateway start). */
export function checkWireSupport(): void {
  if (typeof Sender?.frame !== "function") throw new Error(NO_SENDER);
  const probe = frameText("{}").bytes;
  // FIN + text opcode, unmasked, 2-byte payload: the bytes RFC 6455 prescribes.
  if (probe.length !== 4 || probe[0] !== 0x81 || probe[1] !== 0x02) {
    throw new Error("ws's WebSocket.Sender.frame no longer frames as RFC 6455 says: src/gateway/wire.ts must be adapted to the installed ws");
  }
}

/**
 * Frames built once: their bytes on the wire (one or more whole frames), and each message's
 * payload for `send()` when ws is busy.
 */
export interface Frame {
  readonly bytes: Buffer;
  readonly messages: readonly { readonly payload: Buffer; readonly binary: boolean }[];
}

/** Several frames as one buffer: one write instead of a writev of many. */
export function joinFrames(frames: readonly Frame[]): Frame {
  return { bytes: Buffer.concat(frames.map((f) => f.bytes)), messages: frames.flatMap((f) => f.messages) };
}

function frame(payload: Buffer, binary: boolean): Frame {
  if (typeof Sender?.frame !== "function") throw new Error(NO_SENDER);
  // readOnly: the data is not copied for masking (a server never masks).
  const parts = Sender.frame(payload, { fin: true, opcode: binary ? OPCODE_BINARY : OPCODE_TEXT, mask: false, readOnly: true, rsv1: false });
  return { bytes: parts.length === 1 ? parts[0]! : Buffer.concat(parts), messages: [{ payload, binary }] };
}

/** One complete unmasked text frame (server to client). */
export function frameText(text: string): Frame {
  return frame(Buffer.from(text, "utf8"), false);
}

/** One complete unmasked binary frame (server to client). */
export function frameBinary(data: Uint8Array): Frame {
  return frame(Buffer.from(data.buffer, data.byteOffset, data.byteLength), true);
}

/** The client's TCP socket when pre-framed bytes may be written to it now, else null. */
function rawWritable(socket: WebSocket): Socket | null {
  const internals = socket as unknown as WebSocketInternals;
  const sender = internals._sender;
  const tcp = internals._socket;
  if (!tcp || !sender || sender._state !== SENDER_IDLE || (sender._queue?.length ?? 0) > 0) return null;
  return tcp.writable ? tcp : null;
}

/**
 * Writes whole frames to one open client, in order: the shared bytes as one write (several are
 * corked into one writev), or, when ws's sender is busy, `send()` frame by frame, which keeps the
 * order with whatever ws has queued. Returns true when the client's TCP socket now holds more
 * than its buffer wants (Node's writableNeedDrain): write nothing more until `onceDrained`, so that
 * a slow client's backlog stays a list of shared frames instead of one queued write per event.
 */
export function writeFrames(socket: WebSocket, frames: readonly Frame[]): boolean {
  const tcp = rawWritable(socket);
  if (!tcp) {
    for (const f of frames) for (const m of f.messages) socket.send(m.payload, { binary: m.binary });
    return false;
  }
  if (frames.length === 1) return !tcp.write(frames[0]!.bytes);
  tcp.cork();
  for (const f of frames) tcp.write(f.bytes);
  tcp.uncork();
  return tcp.writableNeedDrain;
}

/** Calls `then` once the client's TCP socket has drained (at once, later, when there is none). */
export function onceDrained(socket: WebSocket, then: () => void): void {
  const tcp = (socket as unknown as WebSocketInternals)._socket;
  if (!tcp || !tcp.writableNeedDrain) {
    setImmediate(then);
    return;
  }
  const done = () => {
    tcp.off("drain", done);
    tcp.off("close", done);
    then();
  };
  tcp.on("drain", done);
  tcp.on("close", done);
}
