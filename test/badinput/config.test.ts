import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runConfig } from "../../src/cli/run.js";
import { ConfigError, type SettingSpec } from "../../src/config.js";
import { RUN_SETTINGS as RUN_SETTING_TABLE } from "../../src/cli/run-settings.js";

/** Run's settings seen as plain specs (each case reads any spec's optional fields). */
const RUN_SETTINGS: readonly SettingSpec[] = RUN_SETTING_TABLE;
import { runCli } from "../harness/cdc.js";
import { exited } from "../harness/processes.js";
import { makeTestCertificates, type TestCertificates } from "../security/certs.js";

/**
 * Issue 4 item 12: every setting of `tera-cdc run`, given a bad value through each place a
 * setting comes from (flag, environment variable, config file), is refused with one line naming
 * the setting. The bad values are derived from each setting's kind in RUN_SETTINGS, so a new
 * setting is covered the moment it is added, and a new kind of setting fails this test until
 * bad values for it are written here. Each setting also gets a good value that must be accepted,
 * so that "refuse everything" cannot pass.
 *
 * The many value cases run in process (runConfig, what `run` calls first); the real command is
 * run for one bad value of every setting and for each usage mistake, and must exit with code 2
 * and write exactly one line to stderr.
 */

/** Nothing listens on port 1: a valid configuration fails at the database with exit code 1. */
const DATABASE_URL = "postgres://cdc@127.0.0.1:1/app";
const MQTT_URL = "mqtt://127.0.0.1:1";
/** A password that must never be echoed back. */
const PASSWORD = "pw-Zq81-never-shown";

// Paths are known when the cases are collected; the files are made before the tests run.
const dir = mkdtempSync(join(tmpdir(), "tera-cdc-badconfig-"));
const garbageFile = join(dir, "garbage.pem");
const directory = join(dir, "a-directory");
const openKeyFile = join(dir, "open.key");
const shortKeyFile = join(dir, "short.key");
const goodKeyFile = join(dir, "signing.key");
let certs: TestCertificates;

beforeAll(() => {
  certs = makeTestCertificates();
  writeFileSync(garbageFile, "this is not a certificate\n");
  writeFileSync(openKeyFile, `${"k".repeat(64)}\n`, { mode: 0o644 });
  chmodSync(openKeyFile, 0o644);
  writeFileSync(shortKeyFile, "short-key\n", { mode: 0o600 });
  writeFileSync(goodKeyFile, `${"k".repeat(64)}\n`, { mode: 0o600 });
  mkdirSync(directory);
});

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
  rmSync(certs.dir, { recursive: true, force: true });
});

interface Bad {
  readonly value: unknown;
  readonly why: string;
}

/** Bad values as text (flags, environment). Throws for a kind this test does not know yet. */
function badTexts(spec: SettingSpec): Bad[] {
  const kind = spec.kind;
  switch (kind.type) {
    case "string":
      return [{ value: "", why: "empty" }];
    case "url":
      return [
        { value: "not a url", why: "not a URL" },
        { value: `http://user:${PASSWORD}@example.org/x`, why: "wrong scheme" },
        ...(kind.requireHost ? [{ value: `${kind.schemes[0]}://`, why: "no host" }] : []),
      ];
    case "int":
      return [
        { value: "abc", why: "not a number" },
        { value: "1.5", why: "not whole" },
        { value: String(kind.min - 1), why: "below the minimum" },
        { value: String(kind.max + 1), why: "above the maximum" },
      ];
    case "enum":
      return [{ value: "bogus", why: "not one of the values" }];
    case "list":
      return [{ value: "a,,b", why: "empty entry" }];
    case "file":
      return [
        { value: join(dir, "missing.pem"), why: "missing file" },
        { value: directory, why: "a directory" },
        ...(kind.pem ? [{ value: garbageFile, why: `not a PEM ${kind.pem}` }] : []),
      ];
    case "bool":
      return [{ value: "maybe", why: "not a boolean" }];
    case "signing-key":
      return [
        { value: join(dir, "missing.key"), why: "missing file" },
        { value: openKeyFile, why: "readable by others" },
        { value: shortKeyFile, why: "shorter than 32 bytes" },
      ];
    default:
      throw new Error(`setting ${(spec as SettingSpec).name} has a kind this test does not know: add its bad values`);
  }
}

/** Values of the wrong type in a YAML config file. */
function badFileValues(spec: SettingSpec): Bad[] {
  switch (spec.kind.type) {
    case "string":
    case "url":
    case "file":
    case "signing-key":
      return [{ value: 42, why: "a number" }, { value: ["a"], why: "a list" }];
    case "int":
      return [{ value: "many", why: "a string" }, { value: true, why: "a boolean" }];
    case "enum":
      return [{ value: true, why: "a boolean" }, { value: ["1"], why: "a list" }];
    case "list":
      return [{ value: 42, why: "a number" }, { value: [1, 2], why: "a list of numbers" }];
    case "bool":
      return [{ value: "maybe", why: "a word" }];
    default:
      throw new Error(`setting ${(spec as SettingSpec).name} has a kind this test does not know`);
  }
}

/** A valid value of the setting, plus any setting it needs beside it. */
function goodValue(spec: SettingSpec): { value: string; companions: string[] } {
  const kind = spec.kind;
  const companions =
    spec.name === "mqtt-cert" ? ["--mqtt-key", certs.clientKey] : spec.name === "mqtt-key" ? ["--mqtt-cert", certs.clientCert] : spec.name === "redis-ca" ? ["--redis-url", "rediss://127.0.0.1:1"] : [];
  switch (kind.type) {
    case "string":
      // A slot name follows PostgreSQL's rule (lower-case letters, digits, _), checked before connecting.
      return { value: spec.name === "slot" ? "a_value" : "a-value", companions };
    case "url":
      return { value: kind.schemes.includes("postgres") ? DATABASE_URL : `${kind.schemes[0]}://127.0.0.1:1`, companions };
    case "int":
      return { value: String(Math.min(kind.max, Math.max(kind.min, 1024))), companions };
    case "enum":
      return { value: kind.values[0]!, companions };
    case "list":
      return { value: "t_a,t_b", companions };
    case "file":
      return { value: kind.pem === "private key" ? certs.clientKey : certs.caCert, companions };
    case "bool":
      return { value: "true", companions };
    case "signing-key":
      return { value: goodKeyFile, companions };
    default:
      throw new Error(`setting ${(spec as SettingSpec).name} has a kind this test does not know`);
  }
}

interface Outcome {
  code: number | null;
  stderr: string;
  stdout: string;
}

/** Runs `tera-cdc run` with the two required URLs unless the case sets them itself. */
async function run(args: string[], env: Record<string, string> = {}, omit: string[] = []): Promise<Outcome> {
  const base: string[] = [];
  if (!omit.includes("database-url")) base.push("--database-url", DATABASE_URL);
  if (!omit.includes("mqtt-url")) base.push("--mqtt-url", MQTT_URL);
  // runCli defaults the log level through the environment, which would mask the file's value.
  const { child, output } = runCli(["run", ...base, ...args], { TERA_CDC_LOG_LEVEL: "", ...env });
  const code = await exited(child, 30_000);
  return { code, ...output() };
}

function configFile(content: string): string {
  const file = join(mkdtempSync(join(dir, "cfg-")), "tera-cdc.yaml");
  writeFileSync(file, content);
  return file;
}

function expectOneLineNaming(expect: import("vitest").ExpectStatic, outcome: Outcome, name: string, hidden: unknown[] = []): void {
  expect(outcome.code, outcome.stderr).toBe(2);
  const lines = outcome.stderr.split("\n").filter((l) => l !== "");
  expect(lines, outcome.stderr).toHaveLength(1);
  expect(outcome.stderr.endsWith("\n")).toBe(true);
  expect(lines[0]).toContain(name);
  expect(outcome.stdout).toBe("");
  for (const secret of [PASSWORD, ...hidden]) if (typeof secret === "string" && secret !== "") expect(lines[0]).not.toContain(secret);
}

// --redis-url replaces --mqtt-url (both together are refused), so its cases (and --redis-ca's, which
// goes with a rediss:// --redis-url) leave the broker URL out.
const inOtherPlaceThanFlags = (spec: SettingSpec) =>
  spec.name === "database-url" || spec.name === "mqtt-url" ? [spec.name] : spec.name === "redis-url" || spec.name === "redis-ca" ? ["mqtt-url"] : [];

const flagCases = RUN_SETTINGS.flatMap((spec) => badTexts(spec).map((bad) => ({ spec, bad })));
// An empty environment variable counts as unset, on purpose: strings have no bad value there.
const envCases = RUN_SETTINGS.filter((s) => s.env).flatMap((spec) => badTexts(spec).filter((bad) => bad.value !== "").map((bad) => ({ spec, bad })));
const fileCases = RUN_SETTINGS.flatMap((spec) => [...badFileValues(spec), ...badTexts(spec)].map((bad) => ({ spec, bad })));

/** The one-line error `tera-cdc run` would print for these arguments (in process), or null when accepted. */
function configError(argv: string[], env: Record<string, string> = {}, omit: string[] = []): string | null {
  const base: string[] = [];
  if (!omit.includes("database-url")) base.push("--database-url", DATABASE_URL);
  if (!omit.includes("mqtt-url")) base.push("--mqtt-url", MQTT_URL);
  try {
    runConfig([...base, ...argv], env);
    return null;
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    return error.message;
  }
}

function expectMessageNaming(expect: import("vitest").ExpectStatic, message: string | null, name: string, hidden: unknown[]): void {
  expect(message).not.toBeNull();
  expect(message).not.toContain("\n");
  expect(message).toContain(name);
  for (const secret of [PASSWORD, ...hidden]) if (typeof secret === "string" && secret !== "") expect(message).not.toContain(secret);
}

describe("every run setting rejects each bad value with one line naming it", () => {
  it("covers every setting of RUN_SETTINGS from flags, environment and config file", () => {
    expect(RUN_SETTINGS.length).toBeGreaterThan(15);
    for (const spec of RUN_SETTINGS) {
      expect(flagCases.some((c) => c.spec === spec), spec.name).toBe(true);
      expect(fileCases.some((c) => c.spec === spec), spec.name).toBe(true);
      if (spec.env && spec.kind.type !== "string") expect(envCases.some((c) => c.spec === spec), spec.name).toBe(true);
    }
  });

  it.for(flagCases.map((c) => [`--${c.spec.name} ${c.bad.why}`, c] as const))("flag %s", ([, { spec, bad }]) => {
    const message = configError([`--${spec.name}=${bad.value as string}`], {}, inOtherPlaceThanFlags(spec));
    expectMessageNaming(expect, message, `setting ${spec.name} (from --${spec.name})`, spec.secret ? [bad.value] : []);
  });

  it.for(envCases.map((c) => [`${c.spec.env} ${c.bad.why}`, c] as const))("environment %s", ([, { spec, bad }]) => {
    const message = configError([], { [spec.env!]: bad.value as string }, inOtherPlaceThanFlags(spec));
    expectMessageNaming(expect, message, `setting ${spec.name} (from ${spec.env})`, spec.secret ? [bad.value] : []);
  });

  it.for(fileCases.map((c) => [`${c.spec.name}: ${c.bad.why}`, c] as const))("config file %s", ([, { spec, bad }]) => {
    const file = configFile(`${JSON.stringify(spec.name)}: ${JSON.stringify(bad.value)}\n`);
    const message = configError(["--config", file], {}, inOtherPlaceThanFlags(spec));
    expectMessageNaming(expect, message, `setting ${spec.name} (from ${spec.name} in ${file})`, spec.secret ? [bad.value] : []);
  });

  it.for(RUN_SETTINGS.map((spec) => [spec.name, spec] as const))("accepts a good --%s", ([, spec]) => {
    const good = goodValue(spec);
    expect(configError([`--${spec.name}=${good.value}`, ...good.companions], {}, inOtherPlaceThanFlags(spec))).toBeNull();
  });
});

describe.concurrent("the real command: exit code 2 and exactly one line on stderr", () => {
  it.for(RUN_SETTINGS.map((spec) => [`--${spec.name} ${badTexts(spec)[0]!.why}`, spec] as const))("%s", async ([, spec], { expect }) => {
    const bad = badTexts(spec)[0]!;
    const outcome = await run([`--${spec.name}=${bad.value as string}`], {}, inOtherPlaceThanFlags(spec));
    expectOneLineNaming(expect, outcome, `setting ${spec.name}`, spec.secret ? [bad.value] : []);
  });

  it("a valid configuration gets past configuration: exit 1 at the unreachable database, not 2", async ({ expect }) => {
    const outcome = await run(["--tables", "t_a", "--mqtt-ca", certs.caCert, "--mqtt-cert", certs.clientCert, "--mqtt-key", certs.clientKey]);
    expect(outcome.code, outcome.stderr).toBe(1);
    expect(outcome.stderr).toMatch(/ECONNREFUSED|connect/);
  });
});

describe.concurrent("bad usage and bad config files", () => {
  const cases: { title: string; args: string[]; env?: Record<string, string>; file?: string; omit?: string[]; names: string; hidden?: string[] }[] = [
    { title: "unknown flag", args: ["--mqtt-pasword", PASSWORD], names: "--mqtt-pasword" },
    { title: "unknown flag with =", args: [`--no-such-flag=${PASSWORD}`], names: "--no-such-flag" },
    { title: "flag without its value", args: ["--slot"], names: "setting slot" },
    { title: "positional argument", args: ["extra"], names: '"extra"' },
    { title: "--config without a path", args: ["--config"], names: "setting config" },
    { title: "missing config file", args: ["--config", "/nonexistent/tera-cdc.yaml"], names: "/nonexistent/tera-cdc.yaml" },
    { title: "config file that is a directory", args: ["--config", "{dir}"], names: "setting config" },
    { title: "config file that is not YAML", args: [], file: "slot: [unclosed\n", names: "setting config" },
    { title: "config file that is a list", args: [], file: "- slot\n- qos\n", names: "setting config" },
    { title: "unknown key in the config file", args: [], file: `slot: a\nmqtt_password: ${PASSWORD}\n`, names: "setting mqtt_password" },
    { title: "per-table: unknown key", args: [], file: "tables:\n  t_a:\n    colums: [a]\n", names: "colums" },
    { title: "per-table: settings not a mapping", args: [], file: "tables:\n  t_a: [a, b]\n", names: "setting tables.t_a" },
    { title: "per-table: model not a string", args: [], file: "tables:\n  t_a:\n    model: [x]\n", names: "setting tables.t_a" },
    { title: "per-table: empty topic", args: [], file: "tables:\n  t_a:\n    topic: ''\n", names: "setting tables.t_a" },
    { title: "per-table: columns not a list", args: [], file: "tables:\n  t_a:\n    columns: id\n", names: "setting tables.t_a" },
    { title: "per-table: exclude of numbers", args: [], file: "tables:\n  t_a:\n    exclude: [1, 2]\n", names: "setting tables.t_a" },
    { title: "per-table: delete-keys not a list", args: [], file: "tables:\n  t_a:\n    delete-keys: 5\n", names: "setting tables.t_a" },
    { title: "per-table: bad table name", args: [], file: "tables:\n  a.b.c:\n    model: x\n", names: "setting tables" },
    { title: "per-table: table not in --tables", args: ["--tables", "t_b"], file: "tables:\n  t_a:\n    model: x\n", names: "setting tables" },
    { title: "bad table name in --tables", args: ["--tables", "a.b.c"], names: "setting tables" },
    { title: "client certificate without its key", args: ["--mqtt-cert", "{clientCert}"], names: "setting mqtt-key" },
    { title: "client key without its certificate", args: ["--mqtt-key", "{clientKey}"], names: "setting mqtt-cert" },
    { title: "private key given as the CA", args: ["--mqtt-ca", "{clientKey}"], names: "setting mqtt-ca" },
    { title: "certificate given as the key", args: ["--mqtt-cert", "{clientCert}", "--mqtt-key", "{clientCert}"], names: "setting mqtt-key" },
    { title: "database URL with a password and a wrong scheme", args: ["--database-url", `mysql://cdc:${PASSWORD}@db/app`], omit: ["database-url"], names: "setting database-url" },
    { title: "database URL with a password that is not a URL", args: ["--database-url", `postgres://cdc:${PASSWORD}@db:port/app`], omit: ["database-url"], names: "setting database-url" },
    { title: "bad value in the environment", args: [], env: { TERA_CDC_MAX_IN_FLIGHT: "0" }, names: "TERA_CDC_MAX_IN_FLIGHT" },
  ];

  it.for(cases.map((c) => [c.title, c] as const))("%s", async ([, c], { expect }) => {
    const fill = (a: string) =>
      a.replace("{dir}", directory).replace("{clientCert}", certs.clientCert).replace("{clientKey}", certs.clientKey);
    const args = c.args.map(fill);
    if (c.file !== undefined) args.push("--config", configFile(c.file));
    const outcome = await run(args, c.env, c.omit);
    expectOneLineNaming(expect, outcome, c.names, c.hidden);
  });
});
