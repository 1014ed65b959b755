import { DatabaseEvent_EventType } from "../messages/index.js";
import { type GatewayEvent, retainedBytes } from "./events.js";
import type { Position } from "./ring.js";
import { type AccessRules, objectKey } from "./rules.js";

/**
 * Each served model's current rows, as the stream says they are (pure): the newest create or
 * update of each key, removed by its delete, all removed by a truncate. Applied in stream order,
 * right after an event passes the gateway's duplicate check, so the rows are exactly the state at
 * the gateway's newest position: a client given these rows and then every later event misses
 * nothing and never sees an older row over a newer one (no query of its own, so no race with the
 * stream). The rows fill from the live stream and from snapshots (tera-cdc's snapshot RPC puts a
 * model's rows into the stream as upserts; the gateway asks for one when it starts).
 *
 * Bounded (`maxRows` rows and `maxBytes` of them over all models, each row counted by what it
 * keeps in memory): past either a model's rows are dropped and it is marked incomplete until the
 * gateway restarts, and clients are told so instead of being given a part.
 */
export class RowStore {
  private readonly rows = new Map<string, Map<string, GatewayEvent>>();
  private readonly incomplete = new Set<string>();
  private count = 0;
  private bytes = 0;
  /**
   * The row each applied event replaced (null: none; absent: not tracked, as for a truncate), so
   * that the rows as they were at an earlier position can be recomputed (rowsBefore). Kept only
   * while the event is in the gateway's ring (forget): a row's versions must not chain through
   * every update it ever had.
   */
  private readonly previous = new Map<GatewayEvent, GatewayEvent | null>();
  private firstPosition: Position | null = null;

  constructor(
    private readonly rules: AccessRules,
    private readonly maxRows: number,
    private readonly maxBytes: number = Number.POSITIVE_INFINITY,
  ) {}

  /** Bytes of the rows held (GatewayEvent.bytes summed). */
  get totalBytes(): number {
    return this.bytes;
  }

  /** Versions tracked for rowsBefore (one per event still in the ring). */
  get trackedVersions(): number {
    return this.previous.size;
  }

  /** The event left the ring: no resume will ask for the row it replaced. */
  forget(event: GatewayEvent): void {
    this.previous.delete(event);
  }

  get size(): number {
    return this.count;
  }

  /**
   * The first event applied since the store started or since the last gap: every row changed at
   * or after it is known here. A client whose rows all changed at or after a position no earlier
   * than this one holds no row this store does not know (resume on another gateway instance).
   */
  get origin(): Position | null {
    return this.firstPosition;
  }

  /** Events may have been missed: nothing before the next event can be vouched for. */
  markGap(): void {
    this.firstPosition = null;
    this.previous.clear();
  }

  /** Applies the event; returns the row it replaced, which stays in memory while the event is in the ring. */
  apply(event: GatewayEvent): GatewayEvent | undefined {
    this.firstPosition ??= { lsn: event.lsn, seq: event.seq };
    if (this.incomplete.has(event.model)) return undefined;
    let model = this.rows.get(event.model);
    if (!model) {
      if (!this.rules.models.has(event.model)) return undefined;
      model = new Map();
      this.rows.set(event.model, model);
    }
    if (event.op === "truncate") {
      this.dropRows(model);
      return undefined;
    }
    const key = objectKey(this.rules, event.model, event.object);
    if (key === undefined) return undefined;
    const previous = model.get(key);
    this.previous.set(event, previous ?? null);
    if (previous) {
      model.delete(key);
      this.count--;
      this.bytes -= previous.bytes;
    }
    if (event.type !== DatabaseEvent_EventType.DB_DELETE) {
      // Re-inserted so that Map order stays "last changed last", the order clients get them in.
      const row = previous ? withUnchangedColumns(previous, event) : event;
      model.set(key, row);
      this.count++;
      this.bytes += row.bytes;
      if (this.count > this.maxRows || this.bytes > this.maxBytes) {
        this.dropRows(model);
        this.rows.delete(event.model);
        this.incomplete.add(event.model);
      }
    }
    return previous;
  }

  private dropRows(model: Map<string, GatewayEvent>): void {
    for (const row of model.values()) this.bytes -= row.bytes;
    this.count -= model.size;
    model.clear();
  }

  /**
   * The model's rows as they were before `later`: the events applied after some position, in
   * order, up to the newest (EventRing.after). Null when that cannot be known: the model is
   * incomplete, or one of the events was not tracked (a truncate, or applied before a row limit).
   */
  rowsBefore(model: string, later: readonly GatewayEvent[]): GatewayEvent[] | null {
    if (this.incomplete.has(model)) return null;
    const rows = new Map(this.rows.get(model) ?? []);
    for (let i = later.length - 1; i >= 0; i--) {
      const event = later[i]!;
      if (event.model !== model) continue;
      if (event.op === "truncate") return null;
      const key = objectKey(this.rules, model, event.object);
      if (key === undefined) continue;
      const previous = this.previous.get(event);
      if (previous === undefined) return null;
      if (previous === null) rows.delete(key);
      else rows.set(key, previous);
    }
    return [...rows.values()];
  }

  /** The model's current rows (each as the event that made it so), or null when incomplete. */
  rowsOf(model: string): readonly GatewayEvent[] | null {
    if (this.incomplete.has(model)) return null;
    return [...(this.rows.get(model)?.values() ?? [])];
  }
}

/**
 * An update leaves out large (TOASTed) values it did not change, unless the table has REPLICA
 * IDENTITY FULL: the row keeps them from its previous state.
 */
function withUnchangedColumns(previous: GatewayEvent, event: GatewayEvent): GatewayEvent {
  const missing = Object.keys(previous.object).filter((column) => !(column in event.object));
  if (missing.length === 0) return event;
  const object: Record<string, unknown> = { ...event.object };
  for (const column of missing) object[column] = previous.object[column];
  const objectValue = JSON.stringify(object);
  return { ...event, object, objectValue, bytes: retainedBytes(objectValue) };
}
