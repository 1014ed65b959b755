import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ConfigError } from "../../src/config.js";
import { runConfig } from "../../src/cli/run.js";

const dir = mkdtempSync(join(tmpdir(), "tera-cdc-config-"));
function file(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

const base = ["--database-url", "postgres://u@db/app", "--mqtt-url", "mqtt://broker:1883"];

function config(argv: string[], env: NodeJS.ProcessEnv = {}) {
  const result = runConfig(argv, env);
  if (result === "help") throw new Error("help");
  return result.config;
}

describe("run settings: flags > environment > config file > defaults", () => {
  it("uses the documented defaults", () => {
    const c = config(base);
    expect(c.source.publication).toBe("tera_cdc");
    expect(c.source.slot).toBe("tera_cdc");
    expect(c.sink.mqtt.qos).toBe(1);
    expect(c.ops.healthPort).toBeUndefined();
    expect(c.source.tables).toBeUndefined();
  });

  it("takes a flag over the environment over the file", () => {
    const path = file("precedence.yaml", "slot: from_file\npublication: from_file\nqos: 0\n");
    const c = config([...base, "--config", path, "--slot", "from_flag"], { TERA_CDC_PUBLICATION: "from_env", TERA_CDC_SLOT: "from_env" });
    expect(c.source.slot).toBe("from_flag");
    expect(c.source.publication).toBe("from_env");
    expect(c.sink.mqtt.qos).toBe(0);
  });

  it("reads URLs and tables from the environment", () => {
    const c = config([], { TERA_CDC_DATABASE_URL: "postgresql://a@b/c", TERA_CDC_MQTT_URL: "mqtts://x:8883", TERA_CDC_TABLES: "t_a, audit.t_b" });
    expect(c.source.tables).toEqual([
      { schema: "public", table: "t_a" },
      { schema: "audit", table: "t_b" },
    ]);
  });

  it("reads per-table settings from a JSON or YAML file", () => {
    const path = file(
      "tables.json",
      JSON.stringify({ "database-url": "postgres://u@db/app", "mqtt-url": "ws://broker/mqtt", tables: { t_users: { model: "user", exclude: ["user_notes"], "delete-keys": ["user_uuid"] }, "site.t_sites": null } }),
    );
    const c = config(["--config", path]);
    expect(c.source.tables).toEqual([
      { schema: "public", table: "t_users" },
      { schema: "site", table: "t_sites" },
    ]);
    expect(c.pipeline.tableSettings["public.t_users"]).toEqual({ model: "user", exclude: ["user_notes"], deleteKeys: ["user_uuid"] });
  });

  it.each([
    [["--qos", "5"], /^setting qos \(from --qos\) is "5": expected one of 0, 1, 2$/],
    [["--health-port", "http"], /^setting health-port \(from --health-port\) is "http": expected a whole number from 1 to 65535$/],
    [["--mqtt-url", "http://broker"], /^setting mqtt-url .* \(scheme http:\): expected a URL starting with mqtt:\/\//],
    [["--frobnicate"], /^unknown flag --frobnicate/],
    [["--config", "/nonexistent.yaml"], /^setting config: cannot read \/nonexistent.yaml \(ENOENT\)/],
    [["--mqtt-ca", "/nonexistent.pem"], /^setting mqtt-ca .* \(ENOENT\): expected a readable /],
    [["--tables", "a.b.c"], /^setting tables: "a.b.c" is not a table name/],
  ])("rejects %j with one line naming the setting", (flags, message) => {
    const run = () => config([...base, ...(flags as string[])]);
    expect(run).toThrow(ConfigError);
    expect(run).toThrow(message as RegExp);
  });

  it("never prints a password back", () => {
    expect(() => config([...base, "--mqtt-password", ""])).toThrow(/is \(hidden\)/);
  });

  describe("a list of brokers (issue 18: the nodes of one cluster)", () => {
    it("takes a comma-separated list from the flag or the environment, and a YAML list from the file", () => {
      expect(config(["--database-url", "postgres://u@db/app", "--mqtt-url", "mqtt://a:1883, mqtt://b:1884,mqtts://c"]).sink.mqtt.url).toBe("mqtt://a:1883, mqtt://b:1884,mqtts://c");
      expect(config(["--database-url", "postgres://u@db/app"], { TERA_CDC_MQTT_URL: "mqtt://a:1883,mqtt://b:1883" }).sink.mqtt.url).toBe("mqtt://a:1883,mqtt://b:1883");
      const path = file("brokers.yaml", "database-url: postgres://u@db/app\nmqtt-url:\n  - mqtt://a:1883\n  - mqtt://b:1883\n");
      expect(config(["--config", path]).sink.mqtt.url).toBe("mqtt://a:1883,mqtt://b:1883");
    });

    it.each([
      ["mqtt://a:1883,http://b:1883", /\(broker 2 of 2: scheme http:\)/],
      ["mqtt://a:1883,b:1883", /\(each broker of a list is a whole URL: mqtt:\/\/a:1883,mqtt:\/\/b:1883\)/],
      ["mqtt://a:1883,mqtt://", /\(broker 2 of 2: (no host|not a URL)\)/],
      ["mqtt://u:secret1@a:1883,mqtt://u:secret2@b:1883", /different user names or passwords: give them once, in mqtt-username and mqtt-password/],
      ["ws://a/mqtt,ws://b/other", /different paths/],
    ])("refuses %s in one line naming the broker and the fix, never echoing a password", (url, message) => {
      const run = () => config(["--database-url", "postgres://u@db/app", "--mqtt-url", url]);
      expect(run).toThrow(ConfigError);
      expect(run).toThrow(message);
      expect(run).toThrow(/^setting mqtt-url \(from --mqtt-url\) is "[^\n]*\): expected a URL starting with mqtt:\/\/.*comma-separated list/);
      expect(run).not.toThrow(/secret/);
    });

    it("never prints a password of a list back, from the file either", () => {
      const path = file("brokers-bad.yaml", "database-url: postgres://u@db/app\nmqtt-url: [\"mqtt://u:hunter2@a:1883\", \"gopher://u:hunter2@b:1883\"]\n");
      const run = () => config(["--config", path]);
      expect(run).toThrow(/broker 2 of 2: scheme gopher:/);
      expect(run).not.toThrow(/hunter2/);
    });
  });

  it("rejects unknown keys in the file and in a table's settings", () => {
    expect(() => config([...base, "--config", file("bad.yaml", "slott: x\n")])).toThrow(/^setting slott in .* is not a known setting/);
    expect(() => config([...base, "--config", file("bad2.yaml", "tables:\n  t_a:\n    colums: [a]\n")])).toThrow(/unknown key colums/);
  });

  it("without a database URL, asks for the embedded PostgreSQL instead of failing (issue 6: npm start)", () => {
    const result = runConfig(["--mqtt-url", "mqtt://x"], {});
    if (result === "help") throw new Error("help");
    expect(result.embedded).toEqual({ database: true, broker: false, dataDir: ".tera-cdc", brokerKind: "auto", gateway: true });
    expect(result.config.sink.mqtt.url).toBe("mqtt://x");
  });
});
