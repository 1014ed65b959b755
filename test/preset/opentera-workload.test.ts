import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { startCdc } from "../harness/cdc.js";
import { type ReceivedEvent, startConsumer } from "../harness/consumer.js";
import { expectedKeys, type ModelSpec } from "./expected.js";
import { DELETES, INSERTS, SECRET_VALUES, UPDATES } from "./workload.js";
import { useClusterAndBroker } from "../harness/servers.js";

const EVENT_FIELDS = JSON.parse(readFileSync(join(import.meta.dirname, "fixtures", "event_fields.json"), "utf8")) as Record<string, ModelSpec>;
const SQL_DIR = join(import.meta.dirname, "..", "..", "sql");
const OP_OF_TYPE: Record<number, "create" | "update" | "delete"> = { 1: "create", 2: "update", 3: "delete" };

const [postgres, broker] = useClusterAndBroker();

beforeAll(async () => {
  // What the embedded default loads: the sample schema written from OpenTera's models, and its data.
  for (const file of ["opentera-schema.sql", "opentera-sample-data.sql"]) await postgres.query(readFileSync(join(SQL_DIR, file), "utf8"));
});

async function replay(statements: readonly (readonly [string, string])[]): Promise<void> {
  const client = await postgres.connect();
  try {
    for (const [, sql] of statements) await client.query(sql);
  } finally {
    await client.end();
  }
}

describe("tera-cdc run --preset opentera on the sample OpenTera schema", () => {
  it("publishes each of the 18 models' INSERT, UPDATE and DELETE with OpenTera's model, topic, op and keys", async () => {
    const consumer = await startConsumer(broker.url);
    const cdc = await startCdc({ databaseUrl: postgres.url, mqttUrl: broker.url, args: ["--preset", "opentera", "--slot", "preset_all", "--publication", "preset_all"] });
    try {
      await replay(INSERTS);
      await replay(UPDATES);
      await replay(DELETES);
      const events = await consumer.waitForCount(18 * 3, 60_000);
      await new Promise((resolve) => setTimeout(resolve, 500));
      expect(consumer.events).toHaveLength(18 * 3);

      const byModel = new Map<string, ReceivedEvent[]>();
      for (const event of events) byModel.set(event.model, [...(byModel.get(event.model) ?? []), event]);
      expect([...byModel.keys()].sort()).toEqual(Object.keys(EVENT_FIELDS).sort());
      for (const [model, spec] of Object.entries(EVENT_FIELDS)) {
        const received = byModel.get(model)!;
        expect(received.map((e) => OP_OF_TYPE[e.type]), model).toEqual(["create", "update", "delete"]);
        for (const event of received) {
          const op = OP_OF_TYPE[event.type]!;
          expect(event.headerTopic, `${model} ${op}`).toBe(spec.topic);
          expect(event.topic, `${model} ${op}`).toBe(spec.topic.replaceAll(".", "/"));
          expect(event.properties.op, `${model} ${op}`).toBe(op);
          expect(Object.keys(event.object).sort(), `${model} ${op} keys`).toEqual(expectedKeys(spec, op));
          expect(event.object[spec.pk], `${model} ${op} ${spec.pk}`).toBe(100);
        }
        // Soft delete: the UPDATE carries the timestamp OpenTera's soft_delete() writes.
        if (spec.soft_delete) expect(received[1]!.object.deleted_at, model).toEqual(expect.any(String));
      }
      const everything = consumer.payloads.map((p) => p.toString("latin1")).join("\n");
      for (const secret of SECRET_VALUES) expect(everything, secret).not.toContain(secret);
      expect(await cdc.stop()).toBe(0);
    } finally {
      if (cdc.child.exitCode === null) await cdc.kill();
      await consumer.close();
    }
  });

  it("publishes a secret OpenTera leaks only when a table's columns setting names it (server settings values)", async () => {
    const dir = mkdtempSync(join(tmpdir(), "tera-cdc-preset-"));
    const file = join(dir, "tera-cdc.yaml");
    writeFileSync(
      file,
      ["preset: opentera", "tables:", "  t_server_settings:", "    columns: [id_server_settings, server_settings_name, server_settings_value]", ""].join("\n"),
    );
    const consumer = await startConsumer(broker.url);
    const cdc = await startCdc({ databaseUrl: postgres.url, mqttUrl: broker.url, args: ["--config", file, "--slot", "preset_enabled", "--publication", "preset_enabled"] });
    try {
      await postgres.query("INSERT INTO t_server_settings (server_settings_name, server_settings_value) VALUES ('EnabledOnPurpose', 'visible-because-configured')");
      await postgres.query("UPDATE t_sites SET site_name = 'Renamed' WHERE id_site = 1");
      const events = await consumer.waitForCount(2, 60_000);
      const setting = events.find((e) => e.model === "server_settings")!;
      expect(setting.object).toMatchObject({ server_settings_name: "EnabledOnPurpose", server_settings_value: "visible-because-configured" });
      // The mapping adds to the preset: the other 17 tables are still streamed with their settings.
      const site = events.find((e) => e.model === "site")!;
      expect(Object.keys(site.object).sort()).toEqual(expectedKeys(EVENT_FIELDS.site!, "update").filter((k) => k !== "deleted_at"));
      expect(await cdc.stop()).toBe(0);
    } finally {
      if (cdc.child.exitCode === null) await cdc.kill();
      await consumer.close();
    }
  });
});
