import type { ChildProcess } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type CdcProcess, runCli, startCdc } from "../harness/cdc.js";
import { waitFor } from "../harness/ports.js";
import { startPostgres } from "../harness/postgres.js";
import { exited } from "../harness/processes.js";
import { useClusterAndBroker } from "../harness/servers.js";

const [db, broker] = useClusterAndBroker();
let auditUrl: string;
const children: ChildProcess[] = [];
const running: CdcProcess[] = [];

beforeAll(async () => {
  // The audit trail lives in a database of its own, as it would in production.
  await db.query("CREATE DATABASE audit_store");
  auditUrl = db.url.replace(/\/[^/?]*(\?|$)/, "/audit_store$1");
});

afterAll(async () => {
  for (const child of children) child.kill("SIGKILL");
  for (const cdc of running) cdc.child.kill("SIGKILL");
});

async function auditQuery(sql: string): Promise<Record<string, unknown>[]> {
  const pg = await import("pg");
  const client = new pg.default.Client({ connectionString: auditUrl });
  await client.connect();
  try {
    return (await client.query(sql)).rows;
  } finally {
    await client.end();
  }
}

/** `tera-cdc audit` as a child process, once it has subscribed. */
async function startAudit(args: string[]): Promise<{ child: ChildProcess; logs: () => string }> {
  const { child, output } = runCli(["audit", "--mqtt-url", broker.url, "--database-url", auditUrl, ...args]);
  children.push(child);
  await waitFor(
    "the audit sink to subscribe",
    () => {
      if (child.exitCode !== null) throw new Error(`audit exited with ${child.exitCode}: ${output().stderr}`);
      return /audit sink recording/.test(output().stderr) || undefined;
    },
    60_000,
  );
  return { child, logs: () => output().stderr };
}

describe("tera-cdc audit", () => {
  it("holds each of 20,000 changes exactly once, in commit order, after being SIGKILLed mid-stream and restarted", async () => {
    await db.query("CREATE TABLE t_ledger_entrys (id_ledger_entry bigint PRIMARY KEY, amount numeric NOT NULL, note text)");
    await db.query("CREATE TABLE t_noises (id_noise bigint PRIMARY KEY)");
    running.push(
      await startCdc({ databaseUrl: db.url, mqttUrl: broker.url, args: ["--tables", "t_ledger_entrys,t_noises", "--slot", "ledger_slot", "--publication", "ledger_pub"] }),
    );
    const sinkArgs = ["--models", "ledger_entry", "--table", "audit.ledger", "--batch-size", "200"];
    const first = await startAudit(sinkArgs);

    // 150 transactions of 100 inserts, then 25 of 200 updates: 20,000 changes; noise on another model.
    const writing = (async () => {
      for (let tx = 0; tx < 150; tx++) {
        await db.query(`INSERT INTO t_ledger_entrys SELECT g, g * 1.5, 'entry ' || g FROM generate_series(${tx * 100 + 1}, ${tx * 100 + 100}) g`);
        if (tx % 10 === 0) await db.query(`INSERT INTO t_noises VALUES (${tx})`);
      }
      for (let tx = 0; tx < 25; tx++) {
        await db.query(`UPDATE t_ledger_entrys SET note = 'corrected' WHERE id_ledger_entry BETWEEN ${tx * 200 + 1} AND ${tx * 200 + 200}`);
      }
    })();

    const count = async () => Number((await auditQuery("SELECT count(*) AS n FROM audit.ledger"))[0]!.n);
    await waitFor("the sink to be under way", async () => ((await count()) >= 2_000 ? true : undefined), 120_000, 20);
    first.child.kill("SIGKILL");
    await exited(first.child);
    const atKill = await count();
    expect(atKill).toBeLessThan(20_000);
    await writing;

    // Everything written while the sink was down waits in its persistent session.
    const second = await startAudit(sinkArgs);
    const restartedAt = Date.now();
    await waitFor("20,000 rows", async () => ((await count()) >= 20_000 ? true : undefined), 180_000, 200);
    const catchUpSeconds = (Date.now() - restartedAt) / 1000;
    await new Promise((r) => setTimeout(r, 1_000));

    const [totals] = await auditQuery(`SELECT count(*) AS rows, count(DISTINCT (lsn, seq)) AS keys,
        count(*) FILTER (WHERE op = 'create') AS creates, count(DISTINCT object->>'id_ledger_entry') FILTER (WHERE op = 'create') AS created_ids,
        count(*) FILTER (WHERE op = 'update') AS updates, count(DISTINCT object->>'id_ledger_entry') FILTER (WHERE op = 'update') AS updated_ids,
        count(*) FILTER (WHERE model <> 'ledger_entry') AS other_models
      FROM audit.ledger`);
    expect(totals).toEqual({ rows: "20000", keys: "20000", creates: "15000", created_ids: "15000", updates: "5000", updated_ids: "5000", other_models: "0" });

    // Appended in commit order: the id sequence follows (lsn, seq).
    const [order] = await auditQuery(`SELECT count(*) AS out_of_order FROM (
        SELECT lsn, seq, lag(lsn) OVER (ORDER BY id) AS prev_lsn, lag(seq) OVER (ORDER BY id) AS prev_seq FROM audit.ledger) s
      WHERE (lsn, seq) < (prev_lsn, prev_seq)`);
    expect(order).toEqual({ out_of_order: "0" });
    const [sample] = await auditQuery("SELECT model, op, object, source_table, xid > 0 AS has_xid, commit_time <= received_at AS received_after_commit FROM audit.ledger WHERE op = 'update' ORDER BY id LIMIT 1");
    expect(sample).toEqual({ model: "ledger_entry", op: "update", object: { id_ledger_entry: 1, amount: expect.anything(), note: "corrected" }, source_table: "public.t_ledger_entrys", has_xid: true, received_after_commit: true });
    console.log(`audit: SIGKILL with ${atKill} of 20,000 rows written; the restarted sink appended the other ${20_000 - atKill} queued changes in ${catchUpSeconds.toFixed(1)} s (${Math.round((20_000 - atKill) / catchUpSeconds)} rows/s)`);

    second.child.kill("SIGTERM");
    expect(await exited(second.child, 30_000)).toBe(0);
    expect(second.logs()).toMatch(/audit sink stopped/);
    console.log(`audit: the restarted sink skipped ${/"repeats":(\d+)[^\n]*audit sink stopped/.exec(second.logs())?.[1] ?? "?"} repeats (committed before the kill, not yet acknowledged)`);
  }, 400_000);

  it("retries while its database is down and acknowledges nothing it has not committed", async () => {
    const store = await startPostgres({ walLevel: "replica" });
    try {
      await db.query("CREATE TABLE t_outage_items (id_outage_item bigint PRIMARY KEY)");
      running.push(await startCdc({ databaseUrl: db.url, mqttUrl: broker.url, args: ["--tables", "t_outage_items", "--slot", "outage_slot", "--publication", "outage_pub"] }));
      const { child, output } = runCli(["audit", "--mqtt-url", broker.url, "--database-url", store.url, "--models", "outage_item", "--table", "audit.outage"]);
      children.push(child);
      await waitFor("the sink to subscribe", () => /audit sink recording/.test(output().stderr) || undefined, 60_000);
      const count = async () => Number((await store.query("SELECT count(*) AS n FROM audit.outage")).rows[0].n);
      await db.query("INSERT INTO t_outage_items SELECT g FROM generate_series(1, 1000) g");
      await waitFor("the first 1,000 rows", async () => ((await count()) === 1_000 ? true : undefined), 60_000);

      await store.stopServer();
      await db.query("INSERT INTO t_outage_items SELECT g FROM generate_series(1001, 3000) g");
      await waitFor("the sink to notice", () => /appending to the audit table failed/.test(output().stderr) || undefined, 60_000);
      // Still running, and the failed batch is not acknowledged: it waits in the session with the rest.
      expect(child.exitCode).toBeNull();
      await store.startServer();
      await waitFor("all 3,000 rows", async () => ((await count()) >= 3_000 ? true : undefined), 120_000, 200);
      await new Promise((r) => setTimeout(r, 500));
      const { rows } = await store.query("SELECT count(*) AS n, count(DISTINCT object->>'id_outage_item') AS ids, min((object->>'id_outage_item')::int) AS lo, max((object->>'id_outage_item')::int) AS hi FROM audit.outage");
      expect(rows[0]).toEqual({ n: "3000", ids: "3000", lo: 1, hi: 3000 });
      expect(output().stderr).toMatch(/audit table writable again/);
      child.kill("SIGTERM");
      expect(await exited(child, 30_000)).toBe(0);
    } finally {
      await store.close();
    }
  }, 300_000);

  it("keeps the table append-only and refuses a table of another shape", async () => {
    const sink = await startAudit(["--table", "audit.guarded"]);
    sink.child.kill("SIGTERM");
    expect(await exited(sink.child, 30_000)).toBe(0);
    await expect(auditQuery("DELETE FROM audit.guarded")).rejects.toThrow(/append-only audit trail: DELETE is not allowed/);
    await expect(auditQuery("UPDATE audit.guarded SET op = 'x'")).rejects.toThrow(/append-only audit trail: UPDATE is not allowed/);

    await auditQuery("CREATE TABLE public.not_an_audit (id int)");
    const { child, output } = runCli(["audit", "--mqtt-url", broker.url, "--database-url", auditUrl, "--table", "public.not_an_audit"]);
    children.push(child);
    expect(await exited(child, 30_000)).toBe(1);
    expect(output().stderr.trim().split("\n").at(-1)).toBe(
      "tera-cdc audit: audit table public.not_an_audit: table public.not_an_audit exists but has no column model, op, object, commit_time, lsn, xid, seq, source_table, received_at, recorded_at: give another --table, or drop it so the sink creates it",
    );
  });
});
