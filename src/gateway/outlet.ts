import { WebSocket } from "ws";
import type { Logger } from "../ops/log.js";
import type { GatewayStats } from "./stats.js";
import { type Frame, onceDrained, writeFrames } from "./wire.js";

/**
 * A client is too slow when its send buffer stays over --max-client-buffer without draining for
 * this long. A burst from the broker fills even a fast client's buffer for a moment; only one that
 * makes no progress is dropped. Past HARD_CAP times the limit it is dropped at once, whatever the
 * time: the bound on what the gateway holds for one client.
 */
const SLOW_CLIENT_GRACE_MS = 2000;
const HARD_CAP = 16;
/** How often the gateway runs every outlet's `checkStalled`. */
export const SLOW_CLIENT_CHECK_MS = 500;
/**
 * Held frames go back to the socket at most this many bytes per write once it drains. Written all
 * at once, a backlog of thousands of frames became thousands of entries in the socket's own write
 * queue and in the one writev request made of them, on top of the held list: three references per
 * frame per client, which ran a 3,000-client gateway out of its 128 MB heap under a burst.
 */
const DRAIN_SLICE_BYTES = 64 * 1024;

/**
 * The frames held over all clients, against --max-held-frames. Each is only a reference to a frame
 * every client shares (its bytes are counted once, by the ring), but a reference per frame per
 * client is what a burst to thousands of slow clients multiplies: past the limit, the clients
 * holding the most are disconnected as too slow until the total is back under it.
 */
export class HeldFrames {
  private total = 0;
  private readonly holders = new Set<Outlet>();

  constructor(
    readonly limit: number,
    private readonly stats: Pick<GatewayStats, "heldFrames">,
  ) {}

  get frames(): number {
    return this.total;
  }

  /** Counts frames an outlet starts holding; may disconnect outlets (that one too) to stay within the limit. */
  add(outlet: Outlet, frames: number): void {
    this.total += frames;
    this.holders.add(outlet);
    this.stats.heldFrames = this.total;
    while (this.total > this.limit) {
      let largest: Outlet | null = null;
      for (const holder of this.holders) if (largest === null || holder.heldFrames > largest.heldFrames) largest = holder;
      if (largest === null || largest.heldFrames === 0) break;
      largest.disconnectSlow("frames held for all clients over --max-held-frames");
    }
  }

  /** Counts frames an outlet stopped holding (written, or dropped with the client). */
  remove(outlet: Outlet, frames: number, holdsMore: boolean): void {
    this.total -= frames;
    if (!holdsMore) this.holders.delete(outlet);
    this.stats.heldFrames = this.total;
  }
}

/** What every outlet shares: the buffer limit, the held-frame budget, and where disconnects are counted and logged. */
export interface OutletPolicy {
  readonly maxClientBufferBytes: number;
  readonly held: HeldFrames;
  readonly stats: Pick<GatewayStats, "framesSent" | "slowDisconnects">;
  readonly logger: Logger;
}

/**
 * One client's way out: frames queued for the fan-out's next flush, written in one write, held
 * (as references to shared frames) while the client's TCP socket drains and written back a slice
 * at a time, and the slow-client policy that bounds what is held.
 */
export class Outlet {
  /** Frames of the live fan-out waiting for the next flush, in order (null: none). */
  private queued: Frame[] | null = null;
  /** Frames held while the TCP socket drains (null: none held); those before `heldFrom` are written. */
  private held: Frame[] | null = null;
  private heldFrom = 0;
  private heldBytes = 0;
  /** The backlog at the last stall check, and since when it has been over the limit without draining. */
  private lastBacklog = 0;
  private stalledSince: number | null = null;

  constructor(
    readonly socket: WebSocket,
    private readonly policy: OutletPolicy,
    /** How the client is named in the slow-client log line. */
    private readonly who: { readonly client: string; readonly subject: string },
  ) {}

  /** Bytes waiting for the client: in its sockets and held for it. */
  get backlog(): number {
    return this.socket.bufferedAmount + this.heldBytes;
  }

  /** Frames held for the client while its socket drains. */
  get heldFrames(): number {
    return this.held === null ? 0 : this.held.length - this.heldFrom;
  }

  /** Adds frames for the next flush (the list is kept, not copied); true when none were queued, so the outlet is new to the flush. */
  queue(frames: Frame[]): boolean {
    if (this.queued === null) {
      this.queued = frames;
      return true;
    }
    for (const f of frames) this.queued.push(f);
    return false;
  }

  /** Writes what was queued for the flush, in one write. */
  flush(): void {
    const frames = this.queued;
    if (frames === null) return;
    this.queued = null;
    this.write(frames);
  }

  /** Sends frames now; anything sent outside the fan-out goes after what the fan-out queued. */
  send(frames: readonly Frame[]): void {
    this.flush();
    this.write(frames);
  }

  /** Disconnects the client when its backlog has stayed over the limit without draining (SLOW_CLIENT_GRACE_MS). */
  checkStalled(now: number): void {
    const backlog = this.backlog;
    if (backlog > this.policy.maxClientBufferBytes && backlog >= this.lastBacklog) {
      this.stalledSince ??= now;
      if (now - this.stalledSince >= SLOW_CLIENT_GRACE_MS) this.disconnectSlow("its send buffer stayed over --max-client-buffer");
    } else {
      this.stalledSince = null;
    }
    this.lastBacklog = backlog;
  }

  /** Drops the client now, and what is held for it (terminate: close() would queue its frame behind the backlog). */
  disconnectSlow(reason: string): void {
    this.policy.stats.slowDisconnects++;
    this.policy.logger.warn({ ...this.who, bufferedBytes: this.backlog, heldFrames: this.heldFrames }, `client too slow: disconnected (${reason})`);
    this.release();
    this.socket.terminate();
  }

  /** Writes frames in one write, or holds them behind what is held; disconnects the client past the hard cap of its backlog. */
  private write(frames: readonly Frame[]): void {
    const socket = this.socket;
    if (frames.length === 0 || socket.readyState !== WebSocket.OPEN) return;
    const hardCap = this.policy.maxClientBufferBytes * HARD_CAP;
    if (this.held) {
      this.hold(frames);
      if (this.held && this.backlog > hardCap) this.disconnectSlow("its backlog passed 16 times --max-client-buffer");
      return;
    }
    if (socket.bufferedAmount > hardCap) {
      this.disconnectSlow("its backlog passed 16 times --max-client-buffer");
      return;
    }
    if (this.writeNow(frames)) this.startHolding();
  }

  /** One write to the socket; true when it must drain before the next. */
  private writeNow(frames: readonly Frame[]): boolean {
    const needsDrain = writeFrames(this.socket, frames);
    for (const f of frames) this.policy.stats.framesSent += f.messages.length;
    return needsDrain;
  }

  /** From now until the socket drains, frames are held instead of written. */
  private startHolding(): void {
    this.held = [];
    this.heldFrom = 0;
    this.heldBytes = 0;
    onceDrained(this.socket, () => this.writeHeld());
  }

  /** Holds frames behind those already held (while the socket drains). */
  private hold(frames: readonly Frame[]): void {
    if (this.held === null) return;
    for (const f of frames) {
      this.held.push(f);
      this.heldBytes += f.bytes.length;
    }
    // Last: the budget may disconnect this very client.
    this.policy.held.add(this, frames.length);
  }

  /** After a drain: writes the held frames a slice at a time, until done or the socket wants to drain again. */
  private writeHeld(): void {
    const held = this.held;
    if (held === null) return;
    if (this.socket.readyState !== WebSocket.OPEN) return this.release();
    while (this.heldFrom < held.length) {
      const from = this.heldFrom;
      let to = from;
      let bytes = 0;
      while (to < held.length && (to === from || bytes + held[to]!.bytes.length <= DRAIN_SLICE_BYTES)) bytes += held[to++]!.bytes.length;
      this.heldFrom = to;
      this.heldBytes -= bytes;
      this.policy.held.remove(this, to - from, to < held.length);
      if (this.writeNow(held.slice(from, to))) {
        // A client that keeps up only just keeps appending behind a written prefix: drop it now and then.
        if (this.heldFrom > 1024 && this.heldFrom * 2 > held.length) {
          this.held = held.slice(this.heldFrom);
          this.heldFrom = 0;
        }
        onceDrained(this.socket, () => this.writeHeld());
        return;
      }
    }
    this.held = null;
    this.heldFrom = 0;
    this.heldBytes = 0;
  }

  /** Forgets what is held (the client is gone). */
  private release(): void {
    const frames = this.heldFrames;
    this.held = null;
    this.heldFrom = 0;
    this.heldBytes = 0;
    if (frames > 0) this.policy.held.remove(this, frames, false);
  }
}
