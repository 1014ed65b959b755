/**
 * The pure parts of snapshots: watermark messages written into the WAL, the user properties and
 * progress reports consumers see, the SQL of one keyset-paginated chunk and the visibility rule
 * of a PostgreSQL snapshot. No I/O here.
 */

import { filterSql, quoteIdent, type SnapshotFilter } from "./filter.js";

/** Prefix of every logical decoding message tera-cdc writes (`pg_logical_emit_message`). */
export const WATERMARK_PREFIX = "tera-cdc";

/** User property on every snapshot event and marker: the snapshot's id. */
export const SNAPSHOT_PROPERTY = "snapshot";
/** User property of a marker (a TeraEvent with no DatabaseEvent) on the model's topic. */
export const MARKER_PROPERTY = "snapshot-marker";
export type MarkerKind = "start" | "end" | "cancelled";

export type SnapshotStatus = "running" | "done" | "cancelled" | "failed";

/** One watermark: `{"snapshot":id,"window":w,"mark":"low"|"high"}`. */
export interface Watermark {
  readonly snapshot: number;
  /** Unique per chunk attempt in this process, so a re-read old watermark never matches. */
  readonly window: string;
  readonly mark: "low" | "high";
}

export function watermarkContent(mark: Watermark): string {
  return JSON.stringify({ snapshot: mark.snapshot, window: mark.window, mark: mark.mark });
}

/** The watermark a logical message carries, or null when it is not one of ours. */
export function parseWatermark(prefix: string, content: Buffer | string): Watermark | null {
  if (prefix !== WATERMARK_PREFIX) return null;
  try {
    const value = JSON.parse(typeof content === "string" ? content : content.toString("utf8")) as Record<string, unknown>;
    if (typeof value.snapshot !== "number" || typeof value.window !== "string") return null;
    if (value.mark !== "low" && value.mark !== "high") return null;
    return { snapshot: value.snapshot, window: value.window, mark: value.mark };
  } catch {
    return null;
  }
}

/** What `snapshot_status` returns and what progress reports carry. */
export interface SnapshotReport {
  readonly id: number;
  readonly model: string;
  readonly table: string;
  readonly where: string | null;
  readonly status: SnapshotStatus;
  /** Rows published so far (delivered to the broker). */
  readonly rows: number;
  /** PostgreSQL's estimate of the rows to publish, taken when the snapshot started. */
  readonly estimatedRows: number;
  readonly chunks: number;
  readonly startedAt: string;
  readonly finishedAt: string | null;
  readonly error: string | null;
}

/** MQTT topic (MQTT form) of a snapshot's progress reports: `module/<module>/snapshots/<id>`. */
export function progressTopic(moduleName: string, id: number | "+"): string {
  return `module/${moduleName}/snapshots/${id}`;
}

export interface ChunkQueryInput {
  /** `"schema"."table"`, quoted. */
  readonly table: string;
  /** Every column in the table's order (the Relation message's order). */
  readonly columns: readonly string[];
  /** Primary key columns with their SQL types (format_type), in key order. */
  readonly key: readonly { name: string; type: string }[];
  /** The caller's checked filter; its values become parameters after the key's. */
  readonly filter: SnapshotFilter | null;
  /** Key (text values) of the last row read; null for the first chunk. */
  readonly after: readonly (string | null)[] | null;
  readonly limit: number;
}

/**
 * One chunk: every column as it is, rows after the last key in key order. Read in text format
 * with no type parsers (RAW_TEXT_TYPES), each value is its type's output function's text under
 * the replication session's settings: what pgoutput sends. A `::text` cast is not that text
 * (`true` for `t`, inet with its netmask, char(n) without its padding).
 */
export function chunkQuery(input: ChunkQueryInput): { text: string; values: unknown[] } {
  // Aliased, so that no column name can collide with anything the query adds.
  const select = input.columns.map((c, i) => `${quoteIdent(c)} AS c${i}`).join(", ");
  const keyList = input.key.map((k) => quoteIdent(k.name)).join(", ");
  const conditions: string[] = [];
  const values: unknown[] = [];
  if (input.after) {
    const params = input.key.map((k, i) => `$${i + 1}::${k.type}`).join(", ");
    conditions.push(`(${keyList}) > (${params})`);
    values.push(...input.after);
  }
  if (input.filter) {
    const compiled = filterSql(input.filter, values.length + 1);
    conditions.push(`(${compiled.sql})`);
    values.push(...compiled.values);
  }
  const filter = conditions.length > 0 ? ` WHERE ${conditions.join(" AND ")}` : "";
  return { text: `SELECT ${select} FROM ${input.table}${filter} ORDER BY ${keyList} LIMIT ${input.limit}`, values };
}

/** A PostgreSQL MVCC snapshot (`pg_current_snapshot()`), for "was this transaction visible?". */
export interface XidSnapshot {
  readonly xmin: bigint;
  readonly xmax: bigint;
  readonly inProgress: ReadonlySet<bigint>;
}

/** Parses `xmin:xmax:xip,xip` (64-bit xids with epoch). */
export function parseXidSnapshot(text: string): XidSnapshot {
  const [xmin, xmax, xip] = text.split(":");
  if (xmin === undefined || xmax === undefined) throw new Error(`not a snapshot: ${text}`);
  return {
    xmin: BigInt(xmin),
    xmax: BigInt(xmax),
    inProgress: new Set((xip ?? "").split(",").filter((x) => x !== "").map((x) => BigInt(x))),
  };
}

/**
 * Whether the (32-bit, as pgoutput sends it) transaction id was visible to the snapshot, i.e.
 * its effects are in what the chunk's SELECT read. The 32-bit id is widened with the epoch of
 * xmax: transactions the stream carries are recent, within 2^31 of the snapshot.
 */
export function visibleIn(snapshot: XidSnapshot, xid32: number): boolean {
  const low = BigInt(xid32 >>> 0);
  const epochBase = snapshot.xmax & ~0xffffffffn;
  let xid = epochBase | low;
  if (xid > snapshot.xmax + 0x7fffffffn) xid -= 0x100000000n;
  else if (xid + 0x80000000n < snapshot.xmax) xid += 0x100000000n;
  if (xid >= snapshot.xmax) return false;
  if (xid < snapshot.xmin) return true;
  return !snapshot.inProgress.has(xid);
}

/** The identity of a row in the stream and in a chunk: its primary key values as text. */
export function keyOf(values: readonly (string | null | undefined)[], keyIndexes: readonly number[]): string {
  let key = "";
  for (const index of keyIndexes) key += `${JSON.stringify(values[index] ?? null)},`;
  return key;
}

/** `12,345 of ~100,000 rows`-style progress figures (pure, for the command's bar). */
export function progressLine(rows: number, estimated: number, elapsedMs: number, width = 30): string {
  const total = Math.max(estimated, rows);
  const fraction = total > 0 ? Math.min(1, rows / total) : 0;
  const filled = Math.round(fraction * width);
  const rate = elapsedMs > 0 ? (rows * 1000) / elapsedMs : 0;
  const left = rate > 0 ? Math.max(0, (total - rows) / rate) : Number.NaN;
  const bar = `[${"#".repeat(filled)}${"-".repeat(width - filled)}]`;
  return `${bar} ${String(Math.floor(fraction * 100)).padStart(3)}% ${rows.toLocaleString("en-US")} of ~${total.toLocaleString("en-US")} rows, ${Math.round(rate).toLocaleString("en-US")} rows/s, ${formatSeconds(left)} left`;
}

export function formatSeconds(seconds: number): string {
  if (!Number.isFinite(seconds)) return "--:--";
  const s = Math.round(seconds);
  const m = Math.floor(s / 60);
  return `${String(m).padStart(2, "0")}:${String(s % 60).padStart(2, "0")}`;
}

const SNAPSHOT_STATUSES: readonly string[] = ["running", "done", "cancelled", "failed"] satisfies readonly SnapshotStatus[];

function isSnapshotStatus(value: unknown): value is SnapshotStatus {
  return typeof value === "string" && SNAPSHOT_STATUSES.includes(value);
}

const isId = (value: unknown): value is number => typeof value === "number" && Number.isSafeInteger(value) && value >= 0;
const isCount = (value: unknown): value is number => typeof value === "number" && Number.isFinite(value) && value >= 0;
const isText = (value: unknown): value is string => typeof value === "string";
const isTextOrNull = (value: unknown): value is string | null => value === null || typeof value === "string";

/**
 * A progress report (or snapshot_status reply) as read from the broker, where anyone allowed to
 * publish on the topic could have put anything: checked field by field, null when it is not one.
 */
export function parseSnapshotReport(value: unknown): SnapshotReport | null {
  if (value === null || typeof value !== "object" || Array.isArray(value)) return null;
  const r: Partial<Record<keyof SnapshotReport, unknown>> = value;
  if (!isId(r.id) || !isText(r.model) || !isText(r.table) || !isTextOrNull(r.where) || !isSnapshotStatus(r.status)) return null;
  if (!isCount(r.rows) || !isCount(r.estimatedRows) || !isCount(r.chunks)) return null;
  if (!isText(r.startedAt) || !isTextOrNull(r.finishedAt) || !isTextOrNull(r.error)) return null;
  return { id: r.id, model: r.model, table: r.table, where: r.where, status: r.status, rows: r.rows, estimatedRows: r.estimatedRows, chunks: r.chunks, startedAt: r.startedAt, finishedAt: r.finishedAt, error: r.error };
}
