import { describe, expect, it } from "vitest";
import { startBroker } from "../harness/broker.js";
import { startCdc } from "../harness/cdc.js";
import { startConsumer } from "../harness/consumer.js";
import { runCli } from "../harness/cdc.js";
import { exited } from "../harness/processes.js";
import { freePort } from "../harness/ports.js";
import { startPostgres } from "../harness/postgres.js";
import { parseLsn } from "../../src/lsn.js";
import { useClusterAndBroker } from "../harness/servers.js";

const [pg, broker] = useClusterAndBroker();

/** Each test streams its own table through its own slot and publication. */
async function streamTable(name: string, ddl: string, extraArgs: string[] = []) {
  await pg.query(ddl);
  const topic = `module/TeraServer/DatabaseModule/events/#`;
  const consumer = await startConsumer(broker.url, topic);
  const cdc = await startCdc({
    databaseUrl: pg.url,
    mqttUrl: broker.url,
    args: ["--tables", name, "--slot", `slot_${name}`, "--publication", `pub_${name}`, ...extraArgs],
  });
  return {
    consumer,
    cdc,
    /** Events of this test's table only (the broker is shared by the file's tests). */
    events: () => consumer.events.filter((e) => e.properties.table === `public.${name}`),
    async close() {
      await cdc.stop();
      await consumer.close();
    },
  };
}

describe("tera-cdc run", () => {
  it("publishes INSERT, UPDATE and DELETE as DB_CREATE, DB_UPDATE and DB_DELETE in TeraEvents on the model's topic", async () => {
    const s = await streamTable(
      "t_devices",
      "CREATE TABLE t_devices (id_device serial PRIMARY KEY, device_name text NOT NULL, device_uuid uuid NOT NULL, device_enabled boolean)",
    );
    await pg.query("INSERT INTO t_devices (device_name, device_uuid, device_enabled) VALUES ('Kit', 'a7ae1ea6-8b0e-4d5e-9b0c-2f4b7c0a0001', true)");
    await pg.query("UPDATE t_devices SET device_name = 'Kit 2' WHERE id_device = 1");
    await pg.query("DELETE FROM t_devices WHERE id_device = 1");
    await s.consumer.waitForCount(3);
    const [create, update, del] = s.events();
    expect(create!.topic).toBe("module/TeraServer/DatabaseModule/events/device");
    expect(create!.headerTopic).toBe("module.TeraServer.DatabaseModule.events.device");
    expect(create!.contentType).toBe("application/x-protobuf");
    expect([create!.type, update!.type, del!.type]).toEqual([1, 2, 3]);
    expect(create!.model).toBe("device");
    expect(create!.objectText).toBe(
      '{"device_enabled":true,"device_name":"Kit","device_uuid":"a7ae1ea6-8b0e-4d5e-9b0c-2f4b7c0a0001","id_device":1}',
    );
    expect(update!.object.device_name).toBe("Kit 2");
    expect(del!.object).toEqual({ id_device: 1 });
    // Properties a consumer dedupes and orders by; the commit time matches the header's time.
    for (const e of s.events()) {
      expect(e.properties.seq).toBe("0");
      expect(Number(e.properties.xid)).toBeGreaterThan(0);
      const [, whole, fraction] = /^(.*?)(\.\d+)?\+00:00$/.exec(e.properties["commit-time"]!)!;
      expect(Date.parse(`${whole}Z`) / 1000 + Number(fraction ?? 0)).toBeCloseTo(e.time, 5);
      expect(e.properties["commit-time"]).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?\+00:00$/);
    }
    const lsns = s.events().map((e) => parseLsn(e.lsn));
    expect([...lsns].sort((a, b) => (a < b ? -1 : 1))).toEqual(lsns);
    expect(new Set(lsns).size).toBe(3);
    await s.close();
  });

  it("publishes nothing of a rolled-back transaction, and a multi-statement transaction in statement order", async () => {
    const s = await streamTable("t_orders", "CREATE TABLE t_orders (id_order int PRIMARY KEY, label text)");
    const client = await pg.connect();
    await client.query("BEGIN");
    await client.query("INSERT INTO t_orders VALUES (1, 'rolled back')");
    await client.query("ROLLBACK");
    await client.query("BEGIN");
    await client.query("INSERT INTO t_orders VALUES (2, 'a')");
    await client.query("UPDATE t_orders SET label = 'b' WHERE id_order = 2");
    await client.query("INSERT INTO t_orders SELECT g, 'bulk' FROM generate_series(3, 7) g");
    await client.query("DELETE FROM t_orders WHERE id_order = 3");
    await client.query("COMMIT");
    await client.end();
    await s.consumer.waitForCount(8);
    const events = s.events();
    expect(events.map((e) => e.object.label ?? null)).not.toContain("rolled back");
    expect(events.map((e) => [e.type, e.object.id_order])).toEqual([
      [1, 2], [2, 2], [1, 3], [1, 4], [1, 5], [1, 6], [1, 7], [3, 3],
    ]);
    expect(events.map((e) => e.properties.seq)).toEqual(["0", "1", "2", "3", "4", "5", "6", "7"]);
    expect(new Set(events.map((e) => e.lsn)).size).toBe(1);
    await s.close();
  });

  it("loses and duplicates nothing across a clean stop and restart in the middle of a stream", async () => {
    await pg.query("CREATE TABLE t_sessions (id_session int PRIMARY KEY, n int)");
    const consumer = await startConsumer(broker.url, "module/TeraServer/DatabaseModule/events/session");
    const args = ["--tables", "t_sessions", "--slot", "slot_restart", "--publication", "pub_restart"];
    let cdc = await startCdc({ databaseUrl: pg.url, mqttUrl: broker.url, args });
    // One connection for the whole writer: a connection per INSERT (pg.query) costs ~45 ms here, so
    // 3,000 of them alone outlasted the test's time on a busy machine.
    const writerClient = await pg.connect();
    const writer = (async () => {
      for (let i = 1; i <= 3000; i++) await writerClient.query(`INSERT INTO t_sessions VALUES (${i}, ${i})`).catch(() => undefined);
      await writerClient.end();
    })();
    // Stop it while the writer is still going, then start it again.
    await consumer.waitForCount(200, 60_000);
    expect(await cdc.stop()).toBe(0);
    expect(cdc.logs()).toMatch(/"msg":"stopped"/);
    cdc = await startCdc({ databaseUrl: pg.url, mqttUrl: broker.url, args });
    await writer;
    await consumer.waitForCount(3000, 90_000);
    await new Promise((r) => setTimeout(r, 500));
    const ids = consumer.events.map((e) => e.object.id_session as number);
    expect(ids).toEqual(Array.from({ length: 3000 }, (_, i) => i + 1));
    expect(await cdc.stop()).toBe(0);
    await consumer.close();
  }, 180_000);

  it("omits an unchanged TOASTed value and names it, or publishes it under REPLICA IDENTITY FULL", async () => {
    const s = await streamTable("t_notes", "CREATE TABLE t_notes (id_note int PRIMARY KEY, body text, title text)");
    expect(s.cdc.logs()).toMatch(/an UPDATE that leaves a large value of body, title unchanged omits it/);
    const big = "x".repeat(100_000) + Math.random().toString(36);
    await pg.query("INSERT INTO t_notes VALUES (1, $1 || md5(random()::text) || repeat(md5(random()::text), 5000), 't')", [big]);
    await pg.query("UPDATE t_notes SET title = 'changed' WHERE id_note = 1");
    await pg.query("ALTER TABLE t_notes REPLICA IDENTITY FULL");
    await pg.query("UPDATE t_notes SET title = 'again' WHERE id_note = 1");
    await s.consumer.waitForCount(3);
    const [insert, keyOnly, full] = s.events();
    expect(keyOnly!.object).toEqual({ id_note: 1, title: "changed" });
    expect(keyOnly!.properties.unchanged).toBe("body");
    expect(full!.object.body).toBe(insert!.object.body);
    expect(full!.properties.unchanged).toBeUndefined();
    await s.close();
  });

  it("publishes a TRUNCATE as a DB_DELETE of every object of the model", async () => {
    const s = await streamTable("t_logs", "CREATE TABLE t_logs (id_log int PRIMARY KEY)");
    await pg.query("INSERT INTO t_logs VALUES (1), (2)");
    await pg.query("TRUNCATE t_logs");
    await s.consumer.waitForCount(3);
    const truncate = s.events()[2]!;
    expect(truncate.type).toBe(3);
    expect(truncate.model).toBe("log");
    expect(truncate.object).toEqual({});
    expect(truncate.properties.op).toBe("truncate");
    await s.close();
  });

  it("refuses a table without primary key or replica identity and does not publish it", async () => {
    await pg.query("CREATE TABLE t_bare (a int, b text)");
    const { child, output } = runCli(["run", "--database-url", pg.url, "--mqtt-url", broker.url, "--tables", "t_bare", "--slot", "slot_bare", "--publication", "pub_bare"]);
    // A prerequisite the database does not meet is bad input: exit 2.
    expect(await exited(child)).toBe(2);
    const lines = output().stderr.trim().split("\n");
    expect(lines.at(-1)).toMatch(/^tera-cdc run: table public\.t_bare has no primary key and no replica identity.*REPLICA IDENTITY FULL/);
    const published = await pg.query("SELECT 1 FROM pg_publication WHERE pubname = 'pub_bare'");
    expect(published.rowCount).toBe(0);
    // UPDATE still works: the table was not put in a publication.
    await pg.query("INSERT INTO t_bare VALUES (1, 'x'); UPDATE t_bare SET b = 'y'");
  });

  it("advances the slot while only unpublished tables are written", async () => {
    const s = await streamTable("t_quiet", "CREATE TABLE t_quiet (id_quiet int PRIMARY KEY)");
    await pg.query("CREATE TABLE IF NOT EXISTS t_busy (id int PRIMARY KEY, pad text)");
    const before = (await pg.query("SELECT confirmed_flush_lsn::text AS lsn FROM pg_replication_slots WHERE slot_name = 'slot_t_quiet'")).rows[0].lsn;
    await pg.query("INSERT INTO t_busy SELECT g, repeat('x', 200) FROM generate_series(1, 20000) g");
    const target = parseLsn((await pg.query("SELECT pg_current_wal_lsn()::text AS lsn")).rows[0].lsn);
    const deadline = Date.now() + 30_000;
    let confirmed = parseLsn(before);
    while (confirmed < target && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 200));
      confirmed = parseLsn((await pg.query("SELECT confirmed_flush_lsn::text AS lsn FROM pg_replication_slots WHERE slot_name = 'slot_t_quiet'")).rows[0].lsn);
    }
    expect(confirmed >= target).toBe(true);
    await s.close();
  });
});

describe("tera-cdc run start-up errors", () => {
  it("waits for an unreachable broker with /healthz 503, then streams once it is up", async () => {
    await pg.query("CREATE TABLE t_late (id_late int PRIMARY KEY)");
    const port = await freePort();
    const cdc = await startCdc({
      databaseUrl: pg.url,
      mqttUrl: `mqtt://127.0.0.1:${port}`,
      args: ["--tables", "t_late", "--slot", "slot_late", "--publication", "pub_late"],
      waitStreaming: false,
    });
    await cdc.waitForLog(/broker unreachable.*retrying/);
    expect((await cdc.health()).status).toBe(503);
    const late = await startBroker({ port });
    try {
      const consumer = await startConsumer(late.url, "module/TeraServer/DatabaseModule/events/late");
      await pg.query("INSERT INTO t_late VALUES (1)");
      await cdc.waitForStreaming(60_000);
      expect((await cdc.health()).body.status).toBe("streaming");
      const [event] = await consumer.waitForCount(1);
      expect(event!.object).toEqual({ id_late: 1 });
      expect(await cdc.stop()).toBe(0);
      await consumer.close();
    } finally {
      await late.close();
    }
  }, 120_000);

  it("says clearly that wal_level must be logical", async () => {
    const replica = await startPostgres({ walLevel: "replica" });
    try {
      await replica.query("CREATE TABLE t_x (id_x int PRIMARY KEY)");
      const { child, output } = runCli(["run", "--database-url", replica.url, "--mqtt-url", broker.url, "--tables", "t_x"]);
      expect(await exited(child)).toBe(2);
      expect(output().stderr.trim().split("\n").at(-1)).toMatch(/^tera-cdc run: wal_level is "replica", logical replication needs "logical": run ALTER SYSTEM SET wal_level = logical/);
    } finally {
      await replica.close();
    }
  });

  it("exits 2 with one line naming a bad setting", async () => {
    const { child, output } = runCli(["run", "--database-url", pg.url, "--mqtt-url", broker.url, "--qos", "3"]);
    expect(await exited(child)).toBe(2);
    expect(output().stderr.trim()).toMatch(/^tera-cdc run: setting qos \(from --qos\) is "3": expected one of 0, 1, 2$/);
  });
});
