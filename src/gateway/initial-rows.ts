import { formatLsn } from "../lsn.js";
import type { Client } from "./client.js";
import type { EventFrames } from "./event-frames.js";
import type { Position } from "./ring.js";
import type { RowStore } from "./rows.js";
import { frameText, type Frame } from "./wire.js";

/**
 * The current rows a client subscribing with "rows": true gets first (docs/gateway.md, Current
 * rows): per model a "rows" frame with the position they are valid at, then each row the client's
 * row rules let through, as the event that made it so (marked "initial").
 */
export class InitialRows {
  constructor(
    private readonly rows: RowStore,
    private readonly frames: EventFrames,
    /** Why the rows of a model may not be all of its rows (SnapshotTracker.partialReason), or null. */
    private readonly partialReason: (model: string) => string | null,
    /** The newest event taken from the broker: the rows are the state at it. */
    private readonly newest: () => Position | null,
  ) {}

  /** Synchronous, so no event slips between the rows and the live stream that follows them. */
  send(client: Client, models: readonly string[]): void {
    const newest = this.newest();
    const position = newest ? { lsn: formatLsn(newest.lsn), seq: newest.seq } : null;
    // Every row sent changed at or after it: the client hands it back to resume on another instance.
    const tracked = this.rows.origin;
    const origin = tracked ? { lsn: formatLsn(tracked.lsn), seq: tracked.seq } : null;
    for (const model of models) {
      if (!client.open) return;
      const rows = this.rows.rowsOf(model);
      if (rows === null) {
        client.sendText(JSON.stringify({ type: "rows", model, position, origin, complete: false, reason: "the gateway holds more rows than --max-rows: only changes from now on" }));
        continue;
      }
      const partial = this.partialReason(model);
      const out: Frame[] = [frameText(JSON.stringify({ type: "rows", model, position, origin, complete: true, ...(partial ? { partial } : {}) }))];
      for (const event of rows) {
        const decision = client.view.decide(event);
        if (decision.send !== null || decision.resyncFirst) this.frames.add(out, decision, true);
      }
      client.outlet.send(out);
    }
  }
}
