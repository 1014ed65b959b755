import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Broker, startBroker } from "../harness/broker.js";
import { startCdc } from "../harness/cdc.js";
import { type ReceivedEvent, startConsumer } from "../harness/consumer.js";
import { waitFor } from "../harness/ports.js";
import { type PostgresServer, startPostgres } from "../harness/postgres.js";
import { sleep } from "./support.js";

const EVENTS = "module/TeraServer/DatabaseModule/events";
const DEAD_LETTER = "tera-cdc/dead-letter";
/** Small enough that a 20 kB row cannot pass, large enough for every ordinary event. */
const BROKER_MAX_PACKET = 8192;

let db: PostgresServer;
/** A broker whose Maximum Packet Size (max_packet_size, sent in CONNACK) is 8 kB. */
let smallBroker: Broker;
/** A broker with users and an ACL: tera-cdc may publish the `open` model (table refused_open) but not the `private` model (refused_private). */
let aclBroker: Broker;

function passwordFile(users: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), "tera-cdc-passwd-"));
  try {
    const file = join(dir, "passwd");
    for (const [user, password] of Object.entries(users)) {
      execFileSync("mosquitto_passwd", [...(Object.keys(users)[0] === user ? ["-c"] : []), "-b", file, user, password], { stdio: "pipe" });
    }
    return readFileSync(file, "utf8");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

beforeAll(async () => {
  const acl = [
    "user cdc",
    `topic write ${EVENTS}/open`,
    `topic write ${DEAD_LETTER}`,
    "topic readwrite module/tera-cdc/#",
    "user reader",
    "topic read #",
  ].join("\n");
  [db, smallBroker, aclBroker] = await Promise.all([
    startPostgres(),
    startBroker({ config: [`max_packet_size ${BROKER_MAX_PACKET}`] }),
    startBroker({
      config: ["listener {port} 127.0.0.1", "allow_anonymous false", "password_file {dir}/passwd", "acl_file {dir}/acl"],
      files: { passwd: passwordFile({ cdc: "cdc-secret", reader: "reader-secret" }), acl: `${acl}\n` },
    }),
  ]);
});

afterAll(async () => {
  await Promise.all([db?.close(), smallBroker?.close(), aclBroker?.close()]);
});

interface Outcome {
  readonly events: ReceivedEvent[];
  readonly figures: Record<string, unknown>;
  readonly logs: string;
}

/**
 * Runs tera-cdc with `--on-oversize rule` over `tables`, commits `sql` (one statement per
 * transaction), waits until the consumer holds `expectedEvents`, then checks the stream went on:
 * the slot's confirmed position passed the last transaction (no stall, no replay on restart) and
 * the process never restarted its stream (no crash loop).
 */
async function run(options: { broker: Broker; rule: string; name: string; tables: string[]; sql: string[]; expectedEvents: number; mqtt?: string[]; consumer?: Record<string, string> }): Promise<Outcome> {
  const { broker, rule, name } = options;
  const cdc = await startCdc({
    databaseUrl: db.url,
    mqttUrl: broker.url,
    args: ["--tables", options.tables.join(","), "--slot", `${name}_slot`, "--publication", `${name}_pub`, "--on-oversize", rule, ...(options.mqtt ?? [])],
  });
  const consumer = await startConsumer(broker.url, "#", options.consumer);
  try {
    for (const statement of options.sql) await db.query(statement);
    await consumer.waitForCount(options.expectedEvents, 30_000);
    // The stream did not stall on the refused event: the slot is confirmed past the last
    // transaction (its commit record starts at the lsn property; confirming means passing its end).
    const lastCommit = consumer.events.at(-1)!.lsn;
    await waitFor("the slot to be confirmed past the last transaction", async () => {
      const row = (await db.query("SELECT confirmed_flush_lsn > $2::pg_lsn AS past FROM pg_replication_slots WHERE slot_name = $1", [`${name}_slot`, lastCommit])).rows[0] as { past: boolean };
      return row.past;
    }, 30_000, 100);
    await sleep(300);
    const health = await cdc.health();
    expect(health.status).toBe(200);
    expect(health.body.reconnects).toBe(0);
    const outcome = { events: [...consumer.events], figures: health.body, logs: cdc.logs() };
    expect(await cdc.stop()).toBe(0);
    return outcome;
  } catch (error) {
    console.log(`tera-cdc logs:\n${cdc.logs().slice(-4000)}`);
    throw error;
  } finally {
    cdc.child.kill("SIGKILL");
    await consumer.close();
  }
}

/** A value far over 8 kB that does not compress away on the wire (pgoutput sends it in full). */
const BIG = "(SELECT string_agg(md5(i::text), '') FROM generate_series(1, 700) i)";

describe("an event too large for the broker's max_packet_size", () => {
  beforeAll(async () => {
    for (const table of ["big_keys", "big_dead", "big_skip"]) {
      await db.query(`CREATE TABLE ${table} (id_${table} bigint PRIMARY KEY, device_uuid uuid NOT NULL DEFAULT '6f1c2a4e-0000-4000-8000-000000000001', body text NOT NULL)`);
    }
  });

  const rows = (table: string) => [
    `INSERT INTO ${table} VALUES (1, DEFAULT, 'small')`,
    `INSERT INTO ${table} VALUES (2, DEFAULT, ${BIG})`,
    `INSERT INTO ${table} VALUES (3, DEFAULT, 'small again')`,
  ];

  it("keys-only: published on its topic with only its keys, marked, counted and logged", async () => {
    const outcome = await run({ broker: smallBroker, rule: "keys-only", name: "big_keys", tables: ["big_keys"], sql: rows("big_keys"), expectedEvents: 3 });
    expect(outcome.events.map((e) => e.object.id_big_keys)).toEqual([1, 2, 3]);
    const big = outcome.events[1]!;
    expect(big.topic).toBe(`${EVENTS}/big_keys`);
    expect(big.object).toEqual({ id_big_keys: 2, device_uuid: "6f1c2a4e-0000-4000-8000-000000000001" });
    expect(big.properties["keys-only"]).toBe("true");
    expect(big.properties.reason).toBe("oversize");
    expect(outcome.events[2]!.object.body).toBe("small again");
    expect(outcome.figures.oversize).toBe(1);
    const line = /.*event published with its keys only \(oversize\).*/.exec(outcome.logs)?.[0];
    expect(line).toBeDefined();
    console.log(line);
  });

  it("dead-letter: routed to the dead-letter topic (keys only, as the full event cannot pass either), counted and logged", async () => {
    const outcome = await run({ broker: smallBroker, rule: "dead-letter", name: "big_dead", tables: ["big_dead"], sql: rows("big_dead"), expectedEvents: 3 });
    const dead = outcome.events.filter((e) => e.topic === DEAD_LETTER);
    expect(dead).toHaveLength(1);
    expect(dead[0]!.object).toEqual({ id_big_dead: 2, device_uuid: "6f1c2a4e-0000-4000-8000-000000000001" });
    expect(dead[0]!.properties["original-topic"]).toBe(`${EVENTS}/big_dead`);
    expect(dead[0]!.properties.reason).toBe("oversize");
    expect(outcome.events.filter((e) => e.topic === `${EVENTS}/big_dead`).map((e) => e.object.id_big_dead)).toEqual([1, 3]);
    expect(outcome.figures.oversize).toBe(1);
    expect(outcome.logs).toMatch(/event routed to tera-cdc\/dead-letter \(oversize\)/);
  });

  it("skip: not published, the stream goes on, counted and logged", async () => {
    const outcome = await run({ broker: smallBroker, rule: "skip", name: "big_skip", tables: ["big_skip"], sql: [...rows("big_skip"), "INSERT INTO big_skip VALUES (4, DEFAULT, 'last')"], expectedEvents: 3 });
    expect(outcome.events.map((e) => e.object.id_big_skip)).toEqual([1, 3, 4]);
    expect(outcome.figures.oversize).toBe(1);
    expect(outcome.figures.skipped).toBe(1);
    expect(outcome.logs).toMatch(/event skipped \(oversize\) by --on-oversize skip/);
  });
});

describe("an event the broker refuses: not authorized on its topic (MQTT 5 PUBACK reason 0x87)", () => {
  beforeAll(async () => {
    await db.query("CREATE TABLE refused_open (id_open bigint PRIMARY KEY, note text)");
    await db.query("CREATE TABLE refused_private (id_private bigint PRIMARY KEY, note text)");
  });

  const interleaved = (from: number) => [
    `INSERT INTO refused_open VALUES (${from}, 'before')`,
    `INSERT INTO refused_private VALUES (${from}, 'refused')`,
    `INSERT INTO refused_open VALUES (${from + 1}, 'after')`,
    `BEGIN; INSERT INTO refused_private VALUES (${from + 1}, 'refused in a transaction'); INSERT INTO refused_open VALUES (${from + 2}, 'same transaction'); COMMIT`,
  ];
  const credentials = ["--mqtt-username", "cdc", "--mqtt-password", "cdc-secret"];
  const reader = { username: "reader", password: "reader-secret" };
  const tables = ["refused_open", "refused_private"];

  it("dead-letter: the refused event goes to the dead-letter topic in full, counted and logged", async () => {
    const outcome = await run({ broker: aclBroker, rule: "dead-letter", name: "acl_dead", tables, sql: interleaved(10), expectedEvents: 5, mqtt: credentials, consumer: reader });
    expect(outcome.events.filter((e) => e.topic === `${EVENTS}/open`).map((e) => e.object.id_open)).toEqual([10, 11, 12]);
    const dead = outcome.events.filter((e) => e.topic === DEAD_LETTER);
    expect(dead.map((e) => e.object)).toEqual([
      { id_private: 10, note: "refused" },
      { id_private: 11, note: "refused in a transaction" },
    ]);
    expect(dead[0]!.properties["original-topic"]).toBe(`${EVENTS}/private`);
    expect(dead[0]!.properties.reason).toMatch(/^refused: .*not authorized/i);
    expect(outcome.figures.rejected).toBe(2);
    const lines = outcome.logs.split("\n").filter((l) => /broker refused an event: .*not authorized|event routed to/i.test(l));
    expect(lines.length).toBeGreaterThanOrEqual(2);
    console.log(lines.slice(0, 2).join("\n"));
    expect(outcome.logs).not.toContain("cdc-secret");
  });

  it("keys-only: the keys-only event is refused too on the same topic, so it is skipped with an error; the stream goes on", async () => {
    const outcome = await run({ broker: aclBroker, rule: "keys-only", name: "acl_keys", tables, sql: interleaved(20), expectedEvents: 3, mqtt: credentials, consumer: reader });
    expect(outcome.events.map((e) => e.object.id_open)).toEqual([20, 21, 22]);
    expect(outcome.figures.rejected).toBe(2);
    expect(outcome.figures.skipped).toBe(2);
    expect(outcome.logs).toMatch(/broker refused the replacement event too, skipped/);
  });

  it("skip: the refused event is dropped, counted and logged; the stream goes on", async () => {
    const outcome = await run({ broker: aclBroker, rule: "skip", name: "acl_skip", tables, sql: interleaved(30), expectedEvents: 3, mqtt: credentials, consumer: reader });
    expect(outcome.events.map((e) => e.object.id_open)).toEqual([30, 31, 32]);
    expect(outcome.figures.rejected).toBe(2);
    expect(outcome.figures.skipped).toBe(2);
    expect(outcome.logs).toMatch(/event skipped \(refused: .*\) by --on-oversize skip/i);
  });
});
