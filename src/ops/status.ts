/**
 * The state of a stream as `tera-cdc status` reports it: the replication slot (active, confirmed
 * LSN, WAL retained), the publication's tables and a running tera-cdc's live figures.
 */
import { publicationTables } from "../source/published-tables.js";
import type { Query } from "../source/database.js";

/** 1536 -> "1.5 KiB" (powers of 1024, as PostgreSQL's pg_size_pretty). Pure. */
export function formatBytes(bytes: number): string {
  const units = ["bytes", "KiB", "MiB", "GiB", "TiB"];
  let value = bytes;
  let unit = 0;
  while (Math.abs(value) >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${value} bytes` : `${value.toFixed(1)} ${units[unit]}`;
}

export interface SlotStatus {
  readonly name: string;
  readonly plugin: string | null;
  readonly database: string | null;
  readonly active: boolean;
  readonly activePid: number | null;
  readonly client: { application: string; address: string | null; replyTime: string | null } | null;
  readonly confirmedLsn: string | null;
  readonly restartLsn: string | null;
  readonly currentLsn: string;
  /** WAL the server keeps for this slot (current position minus restart LSN). */
  readonly retainedBytes: number;
  /** WAL not yet confirmed by tera-cdc (current position minus confirmed LSN). */
  readonly unconfirmedBytes: number;
  readonly walStatus: string | null;
}

export interface StatusReport {
  readonly slot: SlotStatus | null;
  readonly publication: { name: string; tables: string[] | null };
  readonly health?: { url: string; httpStatus?: number; body?: Record<string, unknown>; error?: string };
}

export async function readStatus(query: Query, slot: string, publication: string): Promise<StatusReport> {
  const row = (
    await query(
      `WITH now AS (SELECT CASE WHEN pg_is_in_recovery() THEN pg_last_wal_receive_lsn() ELSE pg_current_wal_lsn() END AS lsn)
       SELECT s.slot_name, s.plugin, s.database, s.active, s.active_pid, s.confirmed_flush_lsn::text AS confirmed,
              s.restart_lsn::text AS restart, now.lsn::text AS current, s.wal_status,
              coalesce(pg_wal_lsn_diff(now.lsn, s.restart_lsn), 0)::bigint AS retained,
              coalesce(pg_wal_lsn_diff(now.lsn, s.confirmed_flush_lsn), 0)::bigint AS unconfirmed,
              r.application_name, host(r.client_addr) AS client_addr, r.reply_time
         FROM pg_replication_slots s CROSS JOIN now
         LEFT JOIN pg_stat_replication r ON r.pid = s.active_pid
        WHERE s.slot_name = $1`,
      [slot],
    )
  ).rows[0];
  const tables = await publicationTables(query, publication);
  return {
    slot: row
      ? {
          name: row.slot_name,
          plugin: row.plugin,
          database: row.database,
          active: row.active,
          activePid: row.active_pid,
          client: row.active_pid ? { application: row.application_name ?? "", address: row.client_addr, replyTime: row.reply_time ? new Date(row.reply_time).toISOString() : null } : null,
          confirmedLsn: row.confirmed,
          restartLsn: row.restart,
          currentLsn: row.current,
          retainedBytes: Number(row.retained),
          unconfirmedBytes: Math.max(0, Number(row.unconfirmed)),
          walStatus: row.wal_status,
        }
      : null,
    publication: { name: publication, tables: tables ? tables.map((t) => `${t.schema}.${t.table}`) : null },
  };
}

/** GET <url>/healthz of a running tera-cdc (its figures), never throwing. */
export async function readHealth(url: string): Promise<NonNullable<StatusReport["health"]>> {
  const target = new URL(url);
  if (target.pathname === "/" || target.pathname === "") target.pathname = "/healthz";
  try {
    const response = await fetch(target, { signal: AbortSignal.timeout(5000) });
    return { url: target.toString(), httpStatus: response.status, body: (await response.json()) as Record<string, unknown> };
  } catch (error) {
    const cause = (error as { cause?: { code?: string } }).cause?.code;
    return { url: target.toString(), error: cause ?? (error as Error).message };
  }
}

/** The report as printed. Pure. */
export function formatStatus(report: StatusReport, now = Date.now()): string {
  const lines: string[] = [];
  const s = report.slot;
  if (!s) {
    lines.push("slot: does not exist (tera-cdc run creates it)");
  } else {
    lines.push(`slot ${s.name} (${s.plugin ?? "physical"}, database ${s.database ?? "-"})`);
    if (s.active) {
      const client = s.client;
      const reply = client?.replyTime ? `, last status ${Math.max(0, Math.round((now - Date.parse(client.replyTime)) / 1000))} s ago` : "";
      lines.push(`  active:        yes, PID ${s.activePid}${client ? ` (${client.application || "?"}${client.address ? ` from ${client.address}` : ""}${reply})` : ""}`);
    } else {
      lines.push("  active:        no (nothing streams from it; WAL accumulates until tera-cdc runs again)");
    }
    lines.push(`  confirmed LSN: ${s.confirmedLsn ?? "-"}   (server now at ${s.currentLsn})`);
    lines.push(`  retained WAL:  ${s.retainedBytes} bytes (${formatBytes(s.retainedBytes)}) since restart LSN ${s.restartLsn ?? "-"}`);
    lines.push(`  unconfirmed:   ${s.unconfirmedBytes} bytes (${formatBytes(s.unconfirmedBytes)})`);
    if (s.walStatus) lines.push(`  WAL status:    ${s.walStatus}`);
  }
  const p = report.publication;
  lines.push(p.tables === null ? `publication ${p.name}: does not exist` : `publication ${p.name}: ${p.tables.length > 0 ? p.tables.join(", ") : "no tables"}`);
  const h = report.health;
  if (h) {
    if (h.error || !h.body) {
      lines.push(`tera-cdc at ${h.url}: not reachable (${h.error ?? `HTTP ${h.httpStatus}`})`);
    } else {
      const { status, ...figures } = h.body;
      lines.push(`tera-cdc at ${h.url}: ${String(status)} (HTTP ${h.httpStatus})`);
      for (const [name, value] of Object.entries(figures)) {
        lines.push(`  ${name.padEnd(14)} ${typeof value === "number" && !Number.isInteger(value) ? value.toFixed(3) : String(value)}`);
      }
    }
  }
  return `${lines.join("\n")}\n`;
}
