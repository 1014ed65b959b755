import type { TupleValues } from "../decode/pgoutput.js";
import type { ChangeOp } from "../model/events.js";
import type { RelationPlan } from "../model/plan.js";
import type { InjectedEvents, InjectedItem, StreamObserver } from "../pipeline/ports.js";
import type { Lsn } from "../lsn.js";
import { keyOf, MARKER_PROPERTY, type MarkerKind, parseWatermark, SNAPSHOT_PROPERTY, visibleIn, type XidSnapshot } from "./protocol.js";

/** One chunk attempt between its low and high watermark. */
export interface ChunkWindow {
  readonly snapshot: number;
  readonly window: string;
  /** How the chunk's rows are published (the table as the catalog describes it now). */
  readonly plan: RelationPlan;
  /** Markers published before the rows (start) and after them (end, cancelled). */
  readonly markersBefore: readonly MarkerKind[];
  readonly markersAfter: readonly MarkerKind[];
  /** Rows of the snapshot published before this chunk (for the end marker's total); setRows may set it later. */
  readonly rowsBefore: number;
}

interface WindowState extends ChunkWindow {
  rowsBefore: number;
  rows: TupleValues[] | null;
  xids: XidSnapshot | null;
  keyIndexes: number[];
  lowSeen: boolean;
  changedAfterLow: Set<string>;
  /** Keys changed between opening the window and the low watermark, with the changing transactions. */
  changedBeforeLow: Map<string, number[]>;
  truncatedAfterLow: boolean;
  truncatedBeforeLow: number[];
  highLsn: Lsn | null;
  published: number;
  resolve: (published: number) => void;
  reject: (error: Error) => void;
}

/**
 * The DBLog watermark method, in stream order. For each chunk window: changes to the chunk's
 * table are collected from the window's opening; at the high watermark the chunk's rows whose
 * key changed after the low watermark (or before it, in a transaction the chunk's SELECT did not
 * see) are dropped, since the stream carries a newer state of them; the rest are injected into
 * the stream right there, as DB_UPDATE events marked `snapshot=<id>`. A chunk counts as done once
 * the safe position passes the high watermark: the broker has every injected event.
 */
export class WatermarkObserver implements StreamObserver {
  private readonly windows = new Map<string, WindowState>();
  private readonly keyIndexCache = new WeakMap<RelationPlan, number[]>();

  /** Opens a window before its low watermark is written; resolves with the rows published. */
  open(chunk: ChunkWindow): Promise<number> {
    return new Promise((resolve, reject) => {
      this.windows.set(chunk.window, {
        ...chunk,
        rows: null,
        xids: null,
        keyIndexes: this.keyIndexes(chunk.plan),
        lowSeen: false,
        changedAfterLow: new Set(),
        changedBeforeLow: new Map(),
        truncatedAfterLow: false,
        truncatedBeforeLow: [],
        highLsn: null,
        published: 0,
        resolve,
        reject,
      });
    });
  }

  /**
   * The chunk's SELECT result (text values in the table's column order) and the snapshot it read;
   * `rowsBefore` when known only now (the chunk before was still being acknowledged at open).
   */
  setRows(window: string, rows: TupleValues[], xids: XidSnapshot | null, rowsBefore?: number): void {
    const state = this.windows.get(window);
    if (!state) return;
    if (rowsBefore !== undefined) state.rowsBefore = rowsBefore;
    state.rows = rows;
    state.xids = xids;
  }

  /** Gives up on a window (its SELECT failed): no events are injected for it. */
  abandon(window: string, error: Error): void {
    const state = this.windows.get(window);
    if (!state) return;
    this.windows.delete(window);
    state.reject(error);
  }

  /**
   * The replication connection was replaced: windows in progress may have lost injected events
   * that were not yet acknowledged, so each is failed and its chunk is taken again.
   */
  streamRestarted(): void {
    for (const state of this.windows.values()) state.reject(new Error("the replication stream restarted during the chunk"));
    this.windows.clear();
  }

  get openWindows(): number {
    return this.windows.size;
  }

  onRowChange(plan: RelationPlan, op: ChangeOp, tuples: readonly TupleValues[], xid: number): void {
    if (this.windows.size === 0) return;
    for (const state of this.windows.values()) {
      if (state.highLsn !== null || state.plan.relation.relationOid !== plan.relation.relationOid) continue;
      if (op === "truncate") {
        if (state.lowSeen) state.truncatedAfterLow = true;
        else state.truncatedBeforeLow.push(xid);
        continue;
      }
      const indexes = this.keyIndexes(plan);
      for (const tuple of tuples) {
        const key = keyOf(tuple, indexes);
        if (state.lowSeen) state.changedAfterLow.add(key);
        else {
          const xids = state.changedBeforeLow.get(key);
          if (xids) xids.push(xid);
          else state.changedBeforeLow.set(key, [xid]);
        }
      }
    }
  }

  onLogicalMessage(message: { prefix: string; content: Buffer; lsn: Lsn }): InjectedEvents | null {
    const mark = parseWatermark(message.prefix, message.content);
    if (!mark) return null;
    const state = this.windows.get(mark.window);
    // An old watermark read again after a reconnect, or another instance's: not ours to act on.
    if (!state || state.highLsn !== null) return null;
    if (mark.mark === "low") {
      state.lowSeen = true;
      return null;
    }
    if (!state.lowSeen || state.rows === null) {
      this.windows.delete(mark.window);
      state.reject(new Error("high watermark without its low watermark or rows"));
      return null;
    }
    const rows = this.keptRows(state);
    state.highLsn = message.lsn;
    state.published = rows.length;
    state.rows = null;
    state.changedAfterLow.clear();
    state.changedBeforeLow.clear();
    const id = String(state.snapshot);
    const marker = (kind: MarkerKind): InjectedItem => ({
      marker: {
        [MARKER_PROPERTY]: kind,
        model: state.plan.model,
        ...(kind === "start" ? {} : { "snapshot-rows": String(state.rowsBefore + rows.length) }),
      },
    });
    const items: InjectedItem[] = [...state.markersBefore.map(marker), ...rows.map((row) => ({ row })), ...state.markersAfter.map(marker)];
    return { plan: state.plan, items, properties: { [SNAPSHOT_PROPERTY]: id }, lsn: message.lsn };
  }

  onSafeLsn(lsn: Lsn): void {
    for (const [window, state] of this.windows) {
      if (state.highLsn !== null && state.highLsn <= lsn) {
        this.windows.delete(window);
        state.resolve(state.published);
      }
    }
  }

  /** The chunk rows the stream has no newer state of. */
  private keptRows(state: WindowState): TupleValues[] {
    const xids = state.xids;
    const unseen = (list: number[]) => xids === null || list.some((xid) => !visibleIn(xids, xid));
    if (state.truncatedAfterLow || (state.truncatedBeforeLow.length > 0 && unseen(state.truncatedBeforeLow))) return [];
    return state.rows!.filter((row) => {
      const key = keyOf(row, state.keyIndexes);
      if (state.changedAfterLow.has(key)) return false;
      const before = state.changedBeforeLow.get(key);
      return !(before && unseen(before));
    });
  }

  private keyIndexes(plan: RelationPlan): number[] {
    let indexes = this.keyIndexCache.get(plan);
    if (!indexes) {
      const names = plan.relation.columns.map((c) => c.name);
      indexes = plan.primaryKey.map((name) => names.indexOf(name));
      this.keyIndexCache.set(plan, indexes);
    }
    return indexes;
  }
}
