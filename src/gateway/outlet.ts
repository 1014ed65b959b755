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

/** What every outlet shares: the buffer limit and where disconnects are counted and logged. */
export interface OutletPolicy {
  readonly maxClientBufferBytes: number;
  readonly stats: Pick<GatewayStats, "framesSent" | "slowDisconnects">;
  readonly logger: Logger;
}

/**
 * One client's way out: frames queued for the fan-out's next flush, written in one write, held
 * (as references to shared frames) while the client's TCP socket drains, and the slow-client
 * policy that bounds what is held.
 */
export class Outlet {
  /** Frames of the live fan-out waiting for the next flush, in order (null: none). */
  private queued: Frame[] | null = null;
  /** Frames held while the TCP socket drains (null: none held), written in one go once it drains. */
  private held: Frame[] | null = null;
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
      if (now - this.stalledSince >= SLOW_CLIENT_GRACE_MS) this.disconnectSlow();
    } else {
      this.stalledSince = null;
    }
    this.lastBacklog = backlog;
  }

  /** Writes frames in one write, or disconnects the client past the hard cap of its backlog. */
  private write(frames: readonly Frame[]): void {
    const socket = this.socket;
    if (frames.length === 0 || socket.readyState !== WebSocket.OPEN) return;
    const hardCap = this.policy.maxClientBufferBytes * HARD_CAP;
    if (this.held) {
      for (const f of frames) {
        this.held.push(f);
        this.heldBytes += f.bytes.length;
      }
      if (this.backlog > hardCap) this.disconnectSlow();
      return;
    }
    if (socket.bufferedAmount > hardCap) {
      this.disconnectSlow();
      return;
    }
    const needsDrain = writeFrames(socket, frames);
    for (const f of frames) this.policy.stats.framesSent += f.messages.length;
    if (!needsDrain) return;
    this.held = [];
    this.heldBytes = 0;
    onceDrained(socket, () => {
      const held = this.held ?? [];
      this.held = null;
      this.heldBytes = 0;
      this.write(held);
    });
  }

  private disconnectSlow(): void {
    this.policy.stats.slowDisconnects++;
    this.policy.logger.warn({ ...this.who, bufferedBytes: this.backlog }, "client too slow: disconnected");
    // close() would queue its frame behind the backlog; terminate frees the memory now.
    this.socket.terminate();
  }
}
