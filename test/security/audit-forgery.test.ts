// Issue 14, "High: consumers trust any publisher", the audit reproductions, against real
// processes: `run` and `audit` as a user starts them, a real Mosquitto, two real PostgreSQL servers
// (the source, and the audit store, so that the audit's own writes do not move the source's WAL).
// The signing key is given through TERA_CDC_SIGNING_KEY_FILE, which the code before the fix
// ignored: there the forgeries go through, and these tests fail.
import type { ChildProcess } from "node:child_process";
import mqtt from "mqtt";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Broker, startBroker } from "../harness/broker.js";
import { type CdcProcess, runCli, startCdc } from "../harness/cdc.js";
import { waitFor } from "../harness/ports.js";
import { type PostgresServer, startPostgres } from "../harness/postgres.js";
import { positionProperties, publishForgeries, signingKeyFile } from "./support/forge.js";

let source: PostgresServer;
let store: PostgresServer;
let broker: Broker;
let cdc: CdcProcess;
const keyFile = signingKeyFile();
const children: ChildProcess[] = [];

beforeAll(async () => {
  [source, store, broker] = await Promise.all([startPostgres(), startPostgres(), startBroker()]);
  await source.query("CREATE TABLE t_users (id_user int PRIMARY KEY, user_name text NOT NULL, user_superadmin boolean NOT NULL DEFAULT false)");
  cdc = await startCdc({ databaseUrl: source.url, mqttUrl: broker.url, args: ["--tables", "t_users"], env: { TERA_CDC_SIGNING_KEY_FILE: keyFile } });
  await cdc.waitForStreaming();
}, 120_000);

afterAll(async () => {
  for (const child of children) child.kill("SIGKILL");
  await cdc?.stop();
  await Promise.all([source?.close(), store?.close(), broker?.close()]);
});

async function rows(sql: string): Promise<Record<string, unknown>[]> {
  const client = new pg.Client({ connectionString: store.url });
  await client.connect();
  try {
    return (await client.query(sql)).rows;
  } finally {
    await client.end();
  }
}

async function startAudit(table: string, env: Record<string, string> = {}): Promise<{ logs: () => string }> {
  const { child, output } = runCli(["audit", "--mqtt-url", broker.url, "--database-url", store.url, "--table", table, "--batch-size", "50"], env);
  children.push(child);
  await waitFor("the audit sink to subscribe", () => {
    if (child.exitCode !== null) throw new Error(`audit exited with ${child.exitCode}: ${output().stderr}`);
    return /audit sink recording/.test(output().stderr) || undefined;
  }, 60_000);
  return { logs: () => output().stderr };
}

describe("audit sink against forged events", () => {
  it("reproduction 'backdated user_superadmin at lsn=0/10' and 'claiming (lsn, seq 0) for 512 positions just ahead of the WAL': with the key, both are dropped and the real UPDATE is recorded; without it, the real UPDATE raises an alert instead of a silent skip", async () => {
    const signed = await startAudit("audit.events", { TERA_CDC_SIGNING_KEY_FILE: keyFile });
    const unsigned = await startAudit("audit.unsigned");
    await source.query("INSERT INTO t_users VALUES (1, 'ada')");
    const count = async (table: string) => Number((await rows(`SELECT count(*) AS n FROM ${table}`))[0]!.n);
    await waitFor("the insert in both tables", async () => ((await count("audit.events")) === 1 && (await count("audit.unsigned")) === 1) || undefined, 60_000);

    // The attacker: a backdated superadmin grant, and the next 512 commit positions of the source's WAL (8-byte aligned), claimed first.
    const ahead = (await source.query("SELECT (pg_current_wal_lsn() + 8 * g)::text AS lsn FROM generate_series(0, 511) g")).rows.map((r) => r.lsn as string);
    const grant = { id_user: 1, user_name: "ada", user_superadmin: true };
    await publishForgeries(broker.url, [
      { model: "user", object: grant, properties: positionProperties("0/10", 0, "public.t_users") },
      ...ahead.map((lsn) => ({ model: "user", object: grant, properties: positionProperties(lsn, 0, "public.t_users", "2026-12-02T00:00:00.000000+00:00") })),
    ]);
    // The real change, which commits at one of the claimed positions.
    await source.query("UPDATE t_users SET user_name = 'ada lovelace' WHERE id_user = 1");

    await waitFor("the real update in the signed trail", async () => ((await count("audit.events")) >= 2) || undefined, 60_000);
    const recorded = await rows("SELECT lsn::text AS lsn, seq, op, object, commit_time FROM audit.events ORDER BY id");
    expect(recorded).toHaveLength(2);
    expect(recorded[1]).toMatchObject({ op: "update", object: { id_user: 1, user_name: "ada lovelace", user_superadmin: false } });
    // The attack would have hit: the real commit position was one of those claimed.
    expect(ahead).toContain(recorded[1]!.lsn);
    expect(JSON.stringify(recorded)).not.toContain('"user_superadmin":true');
    await waitFor("the signed sink to report the forgeries", () => (/message on module\/TeraServer\/DatabaseModule\/events\/user dropped: not signed/.test(signed.logs()) || undefined), 30_000);

    // Without the key the forgeries are stored, but the real change at a claimed position is an alert, not a silent skip.
    await waitFor("the alert in the unsigned sink", () => (/ALERT: .*(other|different) content/.test(unsigned.logs()) || undefined), 60_000);
    expect(unsigned.logs()).toContain(`"lsn":"${recorded[1]!.lsn}"`);
  });

  it("reproduction 'commit-time=not-a-time makes the sink retry forever': the message goes to the dead-letter topic and the sink goes on", async () => {
    const audit = await startAudit("audit.deadletter");
    const watcher = await mqtt.connectAsync(broker.url, { protocolVersion: 5 });
    const deadLetters: Record<string, unknown>[] = [];
    watcher.on("message", (_topic, payload) => deadLetters.push(JSON.parse(payload.toString()) as Record<string, unknown>));
    await watcher.subscribeAsync("tera-cdc/audit/dead-letter", { qos: 1 });
    try {
      const [{ lsn }] = (await source.query("SELECT pg_current_wal_lsn()::text AS lsn")).rows as [{ lsn: string }];
      await publishForgeries(broker.url, [{ model: "user", object: { id_user: 9, user_name: "bad time" }, properties: positionProperties(lsn, 0, "public.t_users", "not-a-time") }]);
      await source.query("INSERT INTO t_users VALUES (2, 'grace')");
      await waitFor("the later real change in the trail", async () => ((await rows("SELECT 1 FROM audit.deadletter WHERE object->>'user_name' = 'grace'")).length === 1) || undefined, 60_000);
      await waitFor("the dead letter", () => (deadLetters.length >= 1 || undefined), 30_000);
      expect(deadLetters[0]).toMatchObject({ model: "user", lsn, seq: 0, commitTime: "not-a-time", topic: "module/TeraServer/DatabaseModule/events/user" });
      expect(String(deadLetters[0]!.reason)).toMatch(/time/);
      expect(audit.logs()).toMatch(/change cannot be stored, sent to the dead-letter topic/);
      expect((await rows("SELECT count(*) AS n FROM audit.deadletter WHERE object->>'user_name' = 'bad time'"))[0]!.n).toBe("0");
    } finally {
      await watcher.endAsync();
    }
  });
});
