import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Broker, startBroker } from "../harness/broker.js";
import { runCli, startCdc } from "../harness/cdc.js";
import { waitFor } from "../harness/ports.js";
import { exited } from "../harness/processes.js";
import { startConsumer } from "../harness/consumer.js";
import { type PostgresServer, startPostgres } from "../harness/postgres.js";
import { type RedisServer, startRedis, startRedisSubscriber } from "../harness/redis.js";
import { actionsOf, type DbEvent } from "./support/opentera-consumers.js";
import { DELETES, INSERTS } from "./workload.js";

/**
 * The contract: OpenTera's services, written here from consumers.md, must do exactly the same on
 * tera-cdc's events (over MQTT and over Redis) as on OpenTera's own events for the same committed
 * changes. OpenTera's own events come from an independent writer: Python, from event-format.md and
 * event_fields.json, fed with each row as PostgreSQL's row_to_json read it right after each change.
 */
const FIELDS = JSON.parse(readFileSync(join(import.meta.dirname, "fixtures", "event_fields.json"), "utf8")) as Record<string, { table: string; pk: string }>;
const SQL_DIR = join(import.meta.dirname, "..", "..", "sql");
const REFERENCE = join(import.meta.dirname, "support", "opentera_reference.py");
const MODEL_OF_TABLE = new Map(Object.entries(FIELDS).map(([model, spec]) => [spec.table, model]));

let postgres: PostgresServer;
let broker: Broker;
let redis: RedisServer;

beforeAll(async () => {
  [postgres, broker, redis] = await Promise.all([startPostgres(), startBroker(), startRedis()]);
  for (const file of ["opentera-schema.sql", "opentera-sample-data.sql"]) await postgres.query(readFileSync(join(SQL_DIR, file), "utf8"));
}, 120_000);

afterAll(async () => {
  await Promise.all([postgres?.close(), broker?.close(), redis?.close()]);
});

type Op = "create" | "update" | "delete";
interface Step {
  readonly table: string;
  readonly op: Op;
  readonly sql: string;
}

/** Every model: insert, an update of an unpublished column, soft delete, restore, hard delete; plus the cases consumers.md turns on. */
function workload(): Step[] {
  const steps: Step[] = [];
  const soft = (table: string) => table !== "t_server_settings";
  const pk = (table: string) => FIELDS[MODEL_OF_TABLE.get(table)!]!.pk;
  for (const [table, sql] of INSERTS) steps.push({ table, op: "create", sql });
  for (const [table] of INSERTS) {
    const where = `WHERE ${pk(table)} = 100`;
    steps.push({ table, op: "update", sql: `UPDATE ${table} SET version_id = version_id + 1 ${where}` });
    if (soft(table)) {
      steps.push({ table, op: "update", sql: `UPDATE ${table} SET deleted_at = now() ${where}` });
      steps.push({ table, op: "update", sql: `UPDATE ${table} SET deleted_at = NULL ${where}` });
    }
  }
  for (const [table, column] of [["t_users", "user_enabled"], ["t_participants", "participant_enabled"], ["t_devices", "device_enabled"], ["t_services", "service_enabled"]] as const) {
    steps.push({ table, op: "update", sql: `UPDATE ${table} SET ${column} = false WHERE ${pk(table)} = 100` });
    steps.push({ table, op: "update", sql: `UPDATE ${table} SET ${column} = true WHERE ${pk(table)} = 100` });
  }
  steps.push(
    { table: "t_services", op: "update", sql: "UPDATE t_services SET service_endpoint_device = '', service_endpoint_participant = NULL WHERE id_service = 100" },
    { table: "t_users", op: "update", sql: "UPDATE t_users SET user_firstname = 'Éloïse 😀', user_lastname = 'Bérubé \"q\" \\ end' WHERE id_user = 100" },
    { table: "t_server_settings", op: "update", sql: "UPDATE t_server_settings SET server_settings_value = 'rotated-token-key' WHERE server_settings_name = 'TokenEncryptionKey'" },
  );
  for (const [table, sql] of DELETES) steps.push({ table, op: "delete", sql });
  return steps;
}

/** Runs the steps one transaction each, reading each row as committed (before a delete). */
async function replay(steps: readonly Step[]): Promise<{ model: string; op: Op; row: Record<string, unknown>; timestamps: string[] }[]> {
  const client = await postgres.connect();
  try {
    await client.query("SET TimeZone = 'UTC'");
    const states = [];
    for (const step of steps) {
      const where = /WHERE (.*)$/.exec(step.sql)?.[1] ?? `${FIELDS[MODEL_OF_TABLE.get(step.table)!]!.pk} = 100`;
      const read = async () => (await client.query(`SELECT row_to_json(t) AS row FROM ${step.table} t WHERE ${where}`)).rows[0]!.row as Record<string, unknown>;
      const before = step.op === "delete" ? await read() : null;
      await client.query(step.sql);
      const row = before ?? (await read());
      const timestamps = (
        await client.query("SELECT column_name FROM information_schema.columns WHERE table_name = $1 AND data_type LIKE 'timestamp%'", [step.table])
      ).rows.map((r) => r.column_name as string);
      states.push({ model: MODEL_OF_TABLE.get(step.table)!, op: step.op, row, timestamps });
    }
    return states;
  } finally {
    await client.end();
  }
}

function openTeraEvents(states: Awaited<ReturnType<typeof replay>>): DbEvent[] {
  const input = JSON.stringify({ fields: FIELDS, published_secrets: ["server_settings_value"], steps: states });
  const result = spawnSync("python3", [REFERENCE], { input, encoding: "utf8", maxBuffer: 64 * 1024 * 1024 });
  if (result.status !== 0) throw new Error(`python3 ${REFERENCE} failed: ${result.stderr}`);
  return (JSON.parse(result.stdout) as { model: string; type: number; object_value: string }[]).map((e) => ({ model: e.model, type: e.type, objectValue: e.object_value }));
}

function byModel(events: readonly DbEvent[]): Map<string, DbEvent[]> {
  const map = new Map<string, DbEvent[]>();
  for (const e of events) map.set(e.model, [...(map.get(e.model) ?? []), { model: e.model, type: e.type, objectValue: e.objectValue }]);
  return map;
}

/**
 * tera-cdc's events as OpenTera would have them, by the corrections docs/opentera-preset.md lists:
 * no server_settings DELETE, and the test_invitation DELETE's id as OpenTera's bug writes it.
 */
function asOpenTeraWouldPublish(events: readonly DbEvent[], testTypeOfInvitation: number): DbEvent[] {
  return events
    .filter((e) => !(e.model === "server_settings" && e.type === 3))
    .map((e) => {
      if (e.model !== "test_invitation" || e.type !== 3) return e;
      const object = JSON.parse(e.objectValue) as Record<string, unknown>;
      expect(object.id_test_invitation).toBe(100);
      return { ...e, objectValue: e.objectValue.replace(`"id_test_invitation": 100`, `"id_test_invitation": ${testTypeOfInvitation}`) };
    });
}

describe("contract: OpenTera's services act the same on tera-cdc's events as on OpenTera's own", () => {
  it("for every model, over MQTT and over Redis", async () => {
    const dir = mkdtempSync(join(tmpdir(), "tera-cdc-contract-"));
    const config = join(dir, "tera-cdc.yaml");
    // ServiceLauncherModule reads the token key from the events: published on purpose here.
    writeFileSync(config, ["preset: opentera", "tables:", "  t_server_settings:", "    columns: [id_server_settings, server_settings_name, server_settings_value]", ""].join("\n"));
    const mqttConsumer = await startConsumer(broker.url);
    const redisSubscriber = await startRedisSubscriber(redis.url);
    // One after the other: the first creates the publication both read (created at once, two would race).
    const overMqtt = await startCdc({ databaseUrl: postgres.url, mqttUrl: broker.url, args: ["--config", config, "--slot", "contract_mqtt", "--publication", "contract"], waitStreaming: false });
    await overMqtt.waitForStreaming(120_000);
    const overRedis = await startCdc({ databaseUrl: postgres.url, redisUrl: redis.url, args: ["--config", config, "--slot", "contract_redis", "--publication", "contract"], waitStreaming: false });
    try {
      await overRedis.waitForStreaming(120_000);
      const steps = workload();
      const states = await replay(steps);
      const reference = openTeraEvents(states);
      // tera-cdc publishes one event per committed change: OpenTera's plus its server_settings DELETE.
      const expectedCount = steps.length;
      await mqttConsumer.waitForCount(expectedCount, 120_000);
      await redisSubscriber.waitForCount(expectedCount, 120_000);
      expect(mqttConsumer.events).toHaveLength(expectedCount);
      expect(redisSubscriber.events).toHaveLength(expectedCount);

      const fromMqtt: DbEvent[] = mqttConsumer.events.map((e) => ({ model: e.model, type: e.type, objectValue: e.objectText }));
      const fromRedis: DbEvent[] = redisSubscriber.events.map((e) => ({ model: e.model, type: e.type, objectValue: e.objectText }));
      for (const e of redisSubscriber.events) expect(e.channel).toBe(`module.TeraServer.DatabaseModule.events.${e.model}`);
      const invitation = states.find((s) => s.model === "test_invitation" && s.op === "delete")!.row.id_test_type as number;

      // Byte for byte, model by model, once the documented corrections are undone.
      const expected = byModel(reference);
      for (const [transport, events] of [["mqtt", fromMqtt], ["redis", fromRedis]] as const) {
        const got = byModel(asOpenTeraWouldPublish(events, invitation));
        expect([...got.keys()].sort(), transport).toEqual(Object.keys(FIELDS).sort());
        for (const model of Object.keys(FIELDS)) expect(got.get(model), `${transport} ${model}`).toEqual(expected.get(model));
      }

      // What the services do: the same on all three streams.
      const onOpenTera = actionsOf(reference);
      expect(actionsOf(fromMqtt)).toEqual(onOpenTera);
      expect(actionsOf(fromRedis)).toEqual(onOpenTera);
      // And it is what consumers.md says it should be (so the comparison is not of two empty lists).
      expect(onOpenTera.serviceLauncher.filter((a) => a.includes("WorkloadService"))).toEqual([
        "service registry: store WorkloadService", // create
        "service registry: store WorkloadService", // update of an unpublished column
        "service registry: remove WorkloadService", // soft delete
        "service registry: store WorkloadService", // restore
        "service registry: remove WorkloadService", // disabled
        "service registry: store WorkloadService", // enabled
        "service registry: store WorkloadService", // endpoints emptied
        "service registry: remove WorkloadService", // hard delete
      ]);
      expect(onOpenTera.deviceTokenKey).toBe("rotated-token-key");
      expect(onOpenTera.userManager.filter((a) => a.startsWith("disconnect user"))).toEqual([
        "disconnect user a0000000-0000-0000-0000-000000000100 (deleted)",
        "disconnect user a0000000-0000-0000-0000-000000000100 (disabled)",
        "disconnect user a0000000-0000-0000-0000-000000000100 (deleted row)",
      ]);
      expect(onOpenTera.userManager.some((a) => a.includes("KeyError"))).toBe(false);
      expect(await overMqtt.stop()).toBe(0);
      expect(await overRedis.stop()).toBe(0);
    } finally {
      for (const cdc of [overMqtt, overRedis]) if (cdc.child.exitCode === null) await cdc.kill();
      await mqttConsumer.close();
      await redisSubscriber.close();
    }
  }, 300_000);

  it("tail, status and /metrics work with --redis-url", async () => {
    const cdc = await startCdc({ databaseUrl: postgres.url, redisUrl: redis.url, args: ["--preset", "opentera", "--slot", "contract_tail", "--publication", "contract"], waitStreaming: false });
    await cdc.waitForStreaming(120_000);
    const tail = runCli(["tail", "--redis-url", redis.url, "--model", "site", "--count", "1", "--json"]);
    try {
      await waitFor("tail to subscribe", () => tail.output().stderr.includes('"msg":"subscribed"'), 30_000);
      await postgres.query("UPDATE t_sites SET site_name = 'Tailed' WHERE id_site = 1");
      expect(await exited(tail.child, 60_000)).toBe(0);
      const printed = JSON.parse(tail.output().stdout.trim()) as Record<string, unknown>;
      expect(printed).toMatchObject({ topic: "module.TeraServer.DatabaseModule.events.site", model: "site", op: "update", object: { id_site: 1, site_name: "Tailed" } });
      const metrics = await (await fetch(`http://127.0.0.1:${cdc.healthPort}/metrics`)).text();
      expect(metrics).toMatch(/^tera_cdc_\w+/m);
      const status = runCli(["status", "--database-url", postgres.url, "--slot", "contract_tail", "--health-port", String(cdc.healthPort), "--json"]);
      expect(await exited(status.child, 60_000)).toBe(0);
      expect(JSON.parse(status.output().stdout)).toMatchObject({ health: { httpStatus: 200 } });
      expect(await cdc.stop()).toBe(0);
    } finally {
      if (tail.child.exitCode === null) tail.child.kill("SIGKILL");
      if (cdc.child.exitCode === null) await cdc.kill();
    }
  }, 180_000);
});
