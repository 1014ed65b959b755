import { readFileSync } from "node:fs";
import { join } from "node:path";
import pg from "pg";
import type { ReceivedEvent } from "../harness/consumer.js";
import type { PostgresServer } from "../harness/postgres.js";
import { waitFor } from "../harness/ports.js";

/**
 * Shared pieces of the fault suites: a workload of committed transactions over two tables (two
 * models), the ground truth of what was committed (the tables themselves: the workload only
 * inserts), and the delivery check an independent consumer applies to what reached the broker.
 */

/** Where a workload's tables live: the cluster's default database, or one of its own. */
export type WorkloadDatabase = Pick<PostgresServer, "url" | "query">;

export interface Workload {
  readonly tables: readonly string[];
  /** `--tables` value. */
  readonly tableList: string;
  /** The name of each table's key column. */
  readonly idColumn: Readonly<Record<string, string>>;
  /**
   * An INSERT ... SELECT of rows `first`..`last` into `table`, the row id being `i` of
   * generate_series; `tag` (an SQL expression) and `padBytes` of text make rows tell apart and weigh.
   */
  insertRows(table: string, first: string, last: string, tag: string, padBytes: number): string;
}

/** Two insert-only tables `<prefix>_a` and `<prefix>_b`; their rows are the committed changes. */
export async function createWorkload(db: WorkloadDatabase, prefix: string): Promise<Workload> {
  const tables = [`${prefix}_a`, `${prefix}_b`];
  for (const table of tables) {
    await db.query(`CREATE TABLE ${table} (id bigint PRIMARY KEY, n int NOT NULL, note text NOT NULL)`);
  }
  return {
    tables,
    tableList: tables.join(","),
    idColumn: Object.fromEntries(tables.map((t) => [t, "id"])),
    insertRows: (table, first, last, tag, padBytes) => `INSERT INTO ${table} SELECT i, ${tag}, repeat('x', ${padBytes}) FROM generate_series(${first}, ${last}) i`,
  };
}

/**
 * Commits `transactions` transactions of `rowsPerTransaction` inserts each, alternating the
 * tables, inside the server (a DO block with COMMIT): a backlog of WAL written in well under a second.
 */
export async function writeBacklog(db: WorkloadDatabase, workload: Workload, transactions: number, rowsPerTransaction: number, firstId = 1, noteBytes = 100): Promise<void> {
  const [a, b] = workload.tables;
  const rows = (table: string) => workload.insertRows(table, "first", `first + ${rowsPerTransaction - 1}`, "t", noteBytes);
  await db.query(`DO $$
    DECLARE first bigint;
    BEGIN
      FOR t IN 0..${transactions - 1} LOOP
        first := ${firstId} + t::bigint * ${rowsPerTransaction};
        IF t % 2 = 0 THEN
          ${rows(a!)};
        ELSE
          ${rows(b!)};
        END IF;
        COMMIT;
      END LOOP;
    END $$`);
}

export interface Writer {
  /** Transactions whose COMMIT returned. */
  readonly committed: () => number;
  stop(): Promise<void>;
}

/**
 * Keeps committing small transactions (alternating tables, increasing ids) until stopped,
 * reconnecting when the server goes away. A transaction whose COMMIT fails is not counted; the
 * tables stay the ground truth either way.
 */
export function startWriter(db: WorkloadDatabase, workload: Workload, options: { rowsPerTransaction?: number; pauseMs?: number; firstId?: number } = {}): Writer {
  const rows = options.rowsPerTransaction ?? 50;
  const pauseMs = options.pauseMs ?? 5;
  let nextId = options.firstId ?? 1_000_000;
  let committed = 0;
  let running = true;
  const loop = (async () => {
    let client: pg.Client | null = null;
    let turn = 0;
    while (running) {
      try {
        if (!client) {
          client = new pg.Client({ connectionString: db.url });
          client.on("error", () => {});
          await client.connect();
        }
        const table = workload.tables[turn++ % workload.tables.length]!;
        const first = nextId;
        nextId += rows;
        await client.query(workload.insertRows(table, String(first), String(first + rows - 1), String(turn), 200));
        committed++;
      } catch {
        await client?.end().catch(() => {});
        client = null;
        await sleep(100);
      }
      if (pauseMs > 0) await sleep(pauseMs);
    }
    await client?.end().catch(() => {});
  })();
  return {
    committed: () => committed,
    async stop() {
      running = false;
      await loop;
    },
  };
}

/** Every committed row id per `schema.table`, in id (= commit) order. */
export async function committedIds(db: WorkloadDatabase, workload: Workload): Promise<Map<string, number[]>> {
  const result = new Map<string, number[]>();
  for (const table of workload.tables) {
    const rows = (await db.query(`SELECT ${workload.idColumn[table]} AS id FROM ${table} ORDER BY 1`)).rows as { id: string }[];
    result.set(`public.${table}`, rows.map((r) => Number(r.id)));
  }
  return result;
}

export function totalOf(ids: Map<string, number[]>): number {
  let total = 0;
  for (const list of ids.values()) total += list.length;
  return total;
}

/** The identity a consumer dedupes by: commit LSN and index in the transaction. */
export function eventKey(event: ReceivedEvent): string {
  return `${event.lsn}/${event.seq}`;
}

/** An LSN in PostgreSQL's spelling (`16/B374D848`) as a number. */
export function lsnValue(text: string): bigint {
  const [high, low] = text.split("/");
  return (BigInt(`0x${high}`) << 32n) + BigInt(`0x${low}`);
}

export interface DeliveryReport {
  readonly received: number;
  readonly unique: number;
  readonly duplicates: number;
  /** Replays seen: a run of events sent again, each starting at the event noted here. */
  readonly replays: { from: string; length: number }[];
}

/**
 * The consumer's check. Every committed row arrived (deduped by lsn+seq), nothing arrived that
 * was not committed, each model's events are in commit order, and duplicates are only replays of
 * a contiguous tail: each replay starts at an earlier event and repeats every event from there,
 * in order, up to the newest one seen before it, then the stream goes on with new events. With
 * `replayFromTransactionStart`, a replay must begin at a transaction's first event (seq 0), which
 * is where tera-cdc resumes after a restart (the confirmed position is a transaction's end).
 */
export function checkDelivery(events: readonly ReceivedEvent[], expected: Map<string, number[]>, options: { allowReplays: boolean; replayFromTransactionStart?: boolean }): DeliveryReport {
  const byKey = new Map<string, ReceivedEvent>();
  for (const event of events) if (!byKey.has(eventKey(event))) byKey.set(eventKey(event), event);
  const canonical = [...byKey.values()].sort((x, y) => {
    const dl = lsnValue(x.lsn) - lsnValue(y.lsn);
    return dl !== 0n ? (dl < 0n ? -1 : 1) : x.seq - y.seq;
  });
  const indexOf = new Map(canonical.map((e, i) => [eventKey(e), i]));

  // Completeness and nothing extra, per table.
  const seen = new Map<string, number[]>();
  for (const event of canonical) {
    const table = event.properties.table ?? "?";
    const list = seen.get(table) ?? [];
    list.push(Number(event.object.id));
    seen.set(table, list);
  }
  for (const [table, ids] of expected) {
    const got = seen.get(table) ?? [];
    const gotSet = new Set(got);
    const missing = ids.filter((id) => !gotSet.has(id));
    if (missing.length > 0) throw new Error(`${table}: ${missing.length} of ${ids.length} committed rows never arrived (first missing ids ${missing.slice(0, 5).join(", ")})`);
    if (got.length !== ids.length) throw new Error(`${table}: ${got.length} distinct events for ${ids.length} committed rows`);
  }
  for (const table of seen.keys()) if (!expected.has(table)) throw new Error(`events for an unexpected table ${table}`);

  // Order per model: first arrivals of each model's events carry increasing ids (commit order).
  const lastId = new Map<string, number>();
  const firstArrival = new Set<string>();
  for (const event of events) {
    const key = eventKey(event);
    if (firstArrival.has(key)) continue;
    firstArrival.add(key);
    const id = Number(event.object.id);
    const previous = lastId.get(event.model) ?? -1;
    if (id <= previous) throw new Error(`model ${event.model}: id ${id} arrived after id ${previous} (out of commit order)`);
    lastId.set(event.model, id);
  }

  // Duplicates: only contiguous replays of what was already seen.
  let newest = -1;
  let previousIndex = -1;
  const replays: { from: string; length: number }[] = [];
  let duplicates = 0;
  for (const event of events) {
    const index = indexOf.get(eventKey(event))!;
    const inReplay = previousIndex < newest;
    if (index === newest + 1) {
      if (inReplay) throw new Error(`new event ${eventKey(event)} arrived before a replay reached the newest event (the replay skipped events)`);
      newest = index;
    } else if (index <= newest) {
      duplicates++;
      if (!options.allowReplays) throw new Error(`duplicate event ${eventKey(event)} where no duplicates are allowed`);
      if (inReplay && index === previousIndex + 1) {
        replays[replays.length - 1]!.length++;
      } else {
        if (inReplay) throw new Error(`a replay at ${eventKey(event)} began before the previous one reached the newest event (not a contiguous tail)`);
        if (options.replayFromTransactionStart && event.seq !== 0) throw new Error(`a replay began at ${eventKey(event)}, inside a transaction`);
        replays.push({ from: eventKey(event), length: 1 });
      }
    } else {
      throw new Error(`event ${eventKey(event)} arrived before ${index - newest - 1} earlier ones (a gap)`);
    }
    previousIndex = index;
  }
  if (previousIndex !== newest) throw new Error("the stream ended inside a replay: events after it never came again");
  return { received: events.length, unique: canonical.length, duplicates, replays };
}

/**
 * The events received from an instance that died, that another then published again: exactly
 * those of transactions at or after the slot's confirmed position at the death (received but not
 * yet confirmed), never one before it. Returns the keys that break this (empty when it holds).
 */
export function duplicatesOutsideTail(firstRun: readonly ReceivedEvent[], all: readonly ReceivedEvent[], confirmed: bigint): string[] {
  const counts = new Map<string, number>();
  for (const event of all) counts.set(eventKey(event), (counts.get(eventKey(event)) ?? 0) + 1);
  return firstRun.filter((event) => counts.get(eventKey(event))! > 1 !== lsnValue(event.lsn) >= confirmed).map(eventKey);
}

/** The slot's confirmed_flush_lsn. */
export async function confirmedPosition(db: WorkloadDatabase, slot: string): Promise<bigint> {
  const row = (await db.query("SELECT confirmed_flush_lsn::text AS lsn FROM pg_replication_slots WHERE slot_name = $1", [slot])).rows[0] as { lsn: string };
  return lsnValue(row.lsn);
}

/** Resident memory of a process in bytes (VmRSS of /proc/<pid>/status). */
export function residentBytes(pid: number): number {
  const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  if (!match) throw new Error(`no VmRSS for process ${pid}`);
  return Number(match[1]) * 1024;
}

/** Waits until the consumer holds every committed change (deduped). */
export async function waitForAll(events: readonly ReceivedEvent[], expected: Map<string, number[]>, timeoutMs = 60_000): Promise<void> {
  const total = totalOf(expected);
  await waitFor(`${total} distinct events`, () => new Set(events.map(eventKey)).size >= total || undefined, timeoutMs, 100);
}

/** The walsender of the slot (pid), once it streams. */
export async function walsenderPid(db: PostgresServer, slot: string): Promise<number> {
  return waitFor(`a walsender on slot ${slot}`, async () => {
    const row = (await db.query("SELECT active_pid FROM pg_replication_slots WHERE slot_name = $1", [slot])).rows[0] as { active_pid: number | null } | undefined;
    return row?.active_pid ?? undefined;
  }, 30_000, 50);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** The sample OpenTera schema (OpenTera's tables, columns and keys), as `npm start` loads it. */
const OPENTERA_SCHEMA = join(import.meta.dirname, "..", "..", "sql", "opentera-schema.sql");

/** A workload on OpenTera's own tables, in a database of its own, for `run --preset opentera`. */
export interface OpenTeraWorkload extends Workload {
  readonly db: WorkloadDatabase;
  /** The table (`public.<table>`) of each model the workload writes. */
  readonly tableOfModel: Readonly<Record<string, string>>;
}

/**
 * Creates database `name` with OpenTera's schema; the workload inserts sites and user groups
 * (models site and user_group), the two OpenTera tables whose rows need nothing else to exist.
 */
export async function createOpenTeraWorkload(server: PostgresServer, name: string): Promise<OpenTeraWorkload> {
  await server.query(`CREATE DATABASE ${name}`);
  const url = new URL(server.url);
  url.pathname = `/${name}`;
  const db: WorkloadDatabase = {
    url: url.toString(),
    async query(sql: string, params?: unknown[]) {
      const client = new pg.Client({ connectionString: url.toString() });
      await client.connect();
      try {
        return await client.query(sql, params);
      } finally {
        await client.end();
      }
    },
  };
  await db.query(readFileSync(OPENTERA_SCHEMA, "utf8"));
  const tables = ["t_sites", "t_users_groups"];
  const insertRows = (table: string, first: string, last: string, tag: string, padBytes: number) =>
    table === "t_sites"
      ? `INSERT INTO t_sites (id_site, site_name, site_2fa_required) SELECT i, 'site ' || i || ' of ' || ${tag} || repeat('x', ${padBytes}), i % 2 = 0 FROM generate_series(${first}, ${last}) i`
      : `INSERT INTO t_users_groups (id_user_group, user_group_name) SELECT i, 'group ' || i || ' of ' || ${tag} || repeat('x', ${padBytes}) FROM generate_series(${first}, ${last}) i`;
  return {
    db,
    tables,
    tableList: tables.join(","),
    idColumn: { t_sites: "id_site", t_users_groups: "id_user_group" },
    insertRows,
    tableOfModel: { site: "public.t_sites", user_group: "public.t_users_groups" },
  };
}
