import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { runConfig } from "../../src/cli/run.js";
import { mergePreset, presetTables } from "../../src/preset/index.js";
import { OPENTERA_MODELS } from "../../src/preset/opentera.js";
import { expectedKeys, type ModelSpec } from "./expected.js";

/** OpenTera's own events, field by field (copied from the shared spec, spec/opentera/event_fields.json). */
const EVENT_FIELDS = JSON.parse(readFileSync(join(import.meta.dirname, "fixtures", "event_fields.json"), "utf8")) as Record<string, ModelSpec>;
const URLS = ["--database-url", "postgres://cdc@db/opentera", "--mqtt-url", "mqtt://broker:1883"];

function configFor(argv: string[], env: NodeJS.ProcessEnv = {}) {
  const result = runConfig(argv, env);
  if (result === "help") throw new Error("unexpected help");
  return result;
}

describe("the opentera preset as data", () => {
  it("covers exactly OpenTera's 18 event models, each with its table, primary key and model name", () => {
    expect(OPENTERA_MODELS.map((m) => m.model).sort()).toEqual(Object.keys(EVENT_FIELDS).sort());
    for (const m of OPENTERA_MODELS) {
      const spec = EVENT_FIELDS[m.model]!;
      expect(m.table, m.model).toBe(spec.table);
      expect(m.primaryKey, m.model).toBe(spec.pk);
      const derived = [...Object.keys(m.derivedKeys), ...(m.rowDerivedKeys ?? []).map((k) => k.key)];
      expect(derived.sort(), m.model).toEqual(Object.keys(spec.derived_keys).sort());
      expect([...m.secretsOpenTeraLeaks].sort(), m.model).toEqual(Object.keys(spec.secrets_published_by_opentera).sort());
    }
  });

  it("publishes OpenTera's CREATE/UPDATE keys less derived keys and secrets, and OpenTera's DELETE keys", () => {
    const { tables, tableSettings } = presetTables("opentera");
    expect(tables).toHaveLength(18);
    for (const [model, spec] of Object.entries(EVENT_FIELDS)) {
      const settings = tableSettings[`public.${spec.table}`]!;
      expect(settings.model).toBe(model);
      expect([...settings.columns!].sort(), model).toEqual(expectedKeys(spec, "update").filter((k) => k !== "user_name"));
      // Delete keys may name a withheld secret: it is published on DELETE only once `columns` names it.
      expect([...settings.deleteKeys!].sort(), model).toEqual([...new Set([spec.pk, ...(spec.delete ?? [])])].sort());
      for (const secret of spec.secrets) expect(settings.columns, `${model}.${secret}`).not.toContain(secret);
    }
  });

  it("lets the user's per-table settings override the preset's, field by field", () => {
    const merged = mergePreset(presetTables("opentera"), {
      tables: ["public.t_server_settings", "audit.t_extra"],
      tablesReplacePreset: false,
      tableSettings: { "public.t_server_settings": { columns: ["id_server_settings", "server_settings_name", "server_settings_value"] }, "audit.t_extra": { model: "extra" } },
    });
    expect(merged.tables).toHaveLength(19);
    expect(merged.tableSettings["public.t_server_settings"]).toEqual({
      model: "server_settings",
      columns: ["id_server_settings", "server_settings_name", "server_settings_value"],
      deleteKeys: ["id_server_settings"],
      objectShape: { json: "python", deleteKeysAsListed: true, omitWhenNull: [], omitWhenEmpty: [], joined: [] },
    });
    expect(merged.tableSettings["audit.t_extra"]).toEqual({ model: "extra" });
    expect(merged.tableSettings["public.t_devices"]!.model).toBe("device");
  });
});

describe("run --preset opentera: configuration", () => {
  it("streams the preset's 18 tables with their settings", () => {
    const { config, preset } = configFor(["--preset", "opentera", ...URLS]);
    expect(preset).toBe("opentera");
    expect(config.source.tables).toHaveLength(18);
    expect(config.pipeline.tableSettings["public.t_users"]!.columns).not.toContain("user_password");
  });

  it("takes --tables (or TERA_CDC_TABLES) as a selection of the preset's tables", () => {
    const fromFlag = configFor(["--preset", "opentera", "--tables", "t_devices,t_users", ...URLS]);
    expect(fromFlag.config.source.tables).toEqual([
      { schema: "public", table: "t_devices" },
      { schema: "public", table: "t_users" },
    ]);
    expect(fromFlag.config.pipeline.tableSettings["public.t_devices"]!.model).toBe("device");
    const fromEnv = configFor(["--preset", "opentera", ...URLS], { TERA_CDC_TABLES: "t_sites" });
    expect(fromEnv.config.source.tables).toEqual([{ schema: "public", table: "t_sites" }]);
  });

  it("reads preset: opentera from the config file, a tables mapping adding to it", () => {
    const dir = mkdtempSync(join(tmpdir(), "tera-cdc-preset-"));
    const file = join(dir, "tera-cdc.yaml");
    writeFileSync(file, "preset: opentera\ntables:\n  t_server_settings:\n    columns: [id_server_settings, server_settings_name, server_settings_value]\n");
    const { config } = configFor(["--config", file, ...URLS]);
    expect(config.source.tables).toHaveLength(18);
    expect(config.pipeline.tableSettings["public.t_server_settings"]!.columns).toContain("server_settings_value");
    expect(config.pipeline.tableSettings["public.t_devices"]!.columns).toContain("device_uuid");
  });

  it("rejects an unknown preset with the allowed names", () => {
    expect(() => configFor(["--preset", "openterra", ...URLS])).toThrow(/setting preset .*"openterra".*expected one of opentera/);
  });

  it("without a database URL, starts the embedded database with the opentera preset; with tables, no preset", () => {
    const embedded = configFor([]);
    expect(embedded.embedded).toMatchObject({ database: true, broker: true, dataDir: ".tera-cdc" });
    expect(embedded.preset).toBe("opentera");
    expect(embedded.config.source.tables).toHaveLength(18);
    const ownTables = configFor(["--tables", "t_devices", "--data-dir", "/tmp/x"]);
    expect(ownTables.preset).toBeUndefined();
    expect(ownTables.embedded.dataDir).toBe("/tmp/x");
    expect(configFor(URLS).embedded).toMatchObject({ database: false, broker: false });
  });
});
