// Issue 14 item 3: `run` signs every message; the signature is checked here against an
// independent verifier written from docs/security.md in Python (hmac, hashlib: no code shared with
// src/), on random messages and on messages a real `run` published to a real Mosquitto.
import { spawnSync } from "node:child_process";
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import mqtt from "mqtt";
import { afterAll, describe, expect, it } from "vitest";
import { sign, signed, verify } from "../../src/messages/signature.js";
import { readSigningKey } from "../../src/signing-key.js";
import { runCli, startCdc } from "../harness/cdc.js";
import { waitFor } from "../harness/ports.js";
import { exited } from "../harness/processes.js";
import { useClusterAndAedes, useClusterAndBroker } from "../harness/servers.js";

const VERIFIER = join(import.meta.dirname, "support", "verify_signature.py");
const dir = mkdtempSync(join(tmpdir(), "tera-signature-"));
const keyFile = join(dir, "signing.key");
writeFileSync(keyFile, "0123456789abcdef0123456789abcdef-signing-key-for-tests\n", { mode: 0o600 });
const key = readSigningKey(keyFile);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

interface Wire {
  topic: string;
  payload: Uint8Array;
  properties: [string, string][];
}

/** Verdicts of the Python verifier, one per message. */
function pythonVerdicts(messages: Wire[], file = keyFile): string[] {
  const input = messages
    .map((m) => JSON.stringify({ key_file: file, topic: m.topic, payload_b64: Buffer.from(m.payload).toString("base64"), properties: m.properties }))
    .join("\n");
  const run = spawnSync("/usr/bin/python3", [VERIFIER], { input, encoding: "utf8", timeout: 60_000 });
  if (run.status !== 0) throw new Error(`verifier failed: ${run.stderr}`);
  return run.stdout.trim().split("\n");
}

const propertyName = fc.oneof(fc.constantFrom("lsn", "xid", "seq", "commit-time", "table", "op", "count", "unchanged", "keys-only", "snapshot"), fc.string({ minLength: 1, unit: "grapheme" }));

describe("the signature scheme, against an independent Python verifier", () => {
  it("agrees on random topics, payloads and properties (non-ASCII and astral names included)", () => {
    const messages = fc.sample(
      fc.record({
        topic: fc.string({ minLength: 1, unit: "grapheme" }),
        payload: fc.uint8Array({ maxLength: 300 }),
        properties: fc.dictionary(propertyName.filter((n) => n !== "sig"), fc.string({ unit: "grapheme" }), { maxKeys: 9 }),
      }),
      { numRuns: 200, seed: 14 },
    );
    const wires: Wire[] = messages.map((m) => ({ topic: m.topic, payload: m.payload, properties: Object.entries(signed(key, m.topic, m.payload, m.properties)) }));
    // Names beyond U+FFFF sort differently as UTF-16 and as UTF-8 bytes: make sure some occur.
    wires.push({ topic: "t", payload: Buffer.from("p"), properties: Object.entries(signed(key, "t", Buffer.from("p"), { "\u{1F600}": "a", "\uFFFD": "b", z: "c" })) });
    expect(pythonVerdicts(wires)).toEqual(wires.map(() => "valid"));
    // And ours refuses what Python refuses: one byte of the payload changed.
    const tampered = wires
      .filter((w) => w.payload.length > 0)
      .map((w) => {
        const payload = Buffer.from(w.payload);
        payload[0] = payload[0]! ^ 1;
        return { ...w, payload };
      });
    expect(pythonVerdicts(tampered).every((v) => v.startsWith("invalid"))).toBe(true);
    for (const w of tampered) expect(verify(key, w.topic, w.payload, Object.fromEntries(w.properties)).ok).toBe(false);
  });

  it("breaks on any change: topic, payload, a property's value, a property added or removed, the key", () => {
    const payload = Buffer.from("teraevent bytes");
    const props = { lsn: "0/16B3748", xid: "750", seq: "0", "commit-time": "2026-12-02T01:00:00.000000+00:00", table: "public.t_users", op: "update" };
    const good = signed(key, "module/TeraServer/DatabaseModule/events/user", payload, props);
    expect(verify(key, "module/TeraServer/DatabaseModule/events/user", payload, good)).toEqual({ ok: true });
    const bad = (topic: string, p: Uint8Array, properties: Record<string, string | string[]>, k: Uint8Array = key) => verify(k, topic, p, properties);
    const topic = "module/TeraServer/DatabaseModule/events/user";
    expect(bad("module/TeraServer/DatabaseModule/events/project", payload, good).ok).toBe(false);
    expect(bad(topic, Buffer.from("teraevent bytez"), good).ok).toBe(false);
    for (const name of Object.keys(props)) {
      expect(bad(topic, payload, { ...good, [name]: `${good[name]}0` }).ok).toBe(false);
      const { [name]: _gone, ...without } = good;
      expect(bad(topic, payload, without).ok).toBe(false);
    }
    expect(bad(topic, payload, { ...good, "keys-only": "true" }).ok).toBe(false);
    expect(bad(topic, payload, { ...good, lsn: [good.lsn!, good.lsn!] })).toMatchObject({ ok: false, reason: "bad-signature" });
    expect(bad(topic, payload, good, Buffer.from("another key of at least thirty-two bytes")).ok).toBe(false);
    expect(bad(topic, payload, props)).toEqual({ ok: false, reason: "unsigned" });
    expect(bad(topic, payload, { ...props, sig: "00" })).toMatchObject({ ok: false, reason: "bad-signature" });
    // A signature is over exactly the bytes given: the MAC of a known vector, computed by Python.
    const vector: Wire = { topic, payload, properties: Object.entries({ ...props, sig: sign(key, topic, payload, props) }) };
    expect(pythonVerdicts([vector])).toEqual(["valid"]);
  });
});

describe("the key file", () => {
  it("is refused when others can read it, when short or missing, in one line that never shows the key (exit 2)", async () => {
    const open = join(dir, "open.key");
    writeFileSync(open, "a-secret-key-value-that-is-long-enough-000\n", { mode: 0o644 });
    chmodSync(open, 0o644);
    const rules = join(dir, "rules.yaml");
    writeFileSync(rules, "models:\n  device: {}\n");
    const short = join(dir, "short.key");
    writeFileSync(short, "tiny-SECRET\n", { mode: 0o600 });
    const commands = [
      ["run", "--database-url", "postgres://127.0.0.1:1/x", "--mqtt-url", "mqtt://127.0.0.1:1"],
      ["audit", "--database-url", "postgres://127.0.0.1:1/x", "--mqtt-url", "mqtt://127.0.0.1:1"],
      ["gateway", "--mqtt-url", "mqtt://127.0.0.1:1", "--rules", rules, "--auth-secret", "gateway-secret-of-at-least-32-bytes-0123456789"],
    ];
    const cases = [
      [open, /signing key file .*open\.key can be read by others \(mode 0644\): run "chmod 600 /],
      [short, /holds 11 bytes, fewer than 32/],
      [join(dir, "missing.key"), /cannot be read \(ENOENT\)/],
    ] as const;
    // All at once: each is a Node start-up, slow on a busy machine.
    await Promise.all(
      cases.flatMap(([file, expected]) =>
        commands.map(async (command) => {
          const { child, output } = runCli([...command, "--signing-key-file", file]);
          expect(await exited(child, 120_000)).toBe(2);
          const { stderr } = output();
          expect(stderr).toMatch(expected);
          expect(stderr).not.toMatch(/SECRET|a-secret-key-value/);
          expect(stderr.trim().split("\n")).toHaveLength(1);
        }),
      ),
    );
  }, 180_000);
});

describe("a real run with --signing-key-file", () => {
  const [pg, broker] = useClusterAndBroker();

  it("publishes every message with a sig the Python verifier accepts (events, batches, truncate, oversize replacements)", async () => {
    await pg.query("CREATE TABLE t_sites (id_site int PRIMARY KEY, site_name text)");
    const received: Wire[] = [];
    const watcher = await mqtt.connectAsync(broker.url, { protocolVersion: 5 });
    watcher.on("message", (topic, payload, packet) => {
      const props = (packet.properties?.userProperties ?? {}) as Record<string, string>;
      received.push({ topic, payload, properties: Object.entries(props) });
    });
    await watcher.subscribeAsync(["module/TeraServer/DatabaseModule/events/#", "tera-cdc/dead-letter"], { qos: 1 });
    const cdc = await startCdc({
      databaseUrl: pg.url,
      mqttUrl: broker.url,
      args: ["--tables", "t_sites", "--slot", "signed", "--publication", "signed", "--signing-key-file", keyFile, "--max-message-bytes", "2048", "--on-oversize", "dead-letter", "--batch-events", "10"],
    });
    try {
      await cdc.waitForStreaming();
      await pg.query("INSERT INTO t_sites VALUES (1, 'Québec ✓'), (2, 'Sherbrooke')");
      await pg.query("UPDATE t_sites SET site_name = repeat('x', 4000) WHERE id_site = 2");
      await pg.query("DELETE FROM t_sites WHERE id_site = 1");
      await pg.query("TRUNCATE t_sites");
      // The two inserts as one batched message, the update as a dead letter, the delete, the truncate.
      await waitFor("4 messages", () => (received.length >= 4 ? true : undefined), 30_000);
      expect(received.map((m) => m.topic)).toContain("tera-cdc/dead-letter");
      expect(received.some((m) => m.properties.some(([n, v]) => n === "count" && v === "2"))).toBe(true);
      expect(received.some((m) => m.properties.some(([n, v]) => n === "op" && v === "truncate"))).toBe(true);
      expect(received.every((m) => m.properties.some(([n]) => n === "sig"))).toBe(true);
      expect(pythonVerdicts(received)).toEqual(received.map(() => "valid"));
      expect(cdc.logs()).not.toContain("signing-key-for-tests");
    } finally {
      await cdc.stop();
      await watcher.endAsync();
    }
  });
});

describe("an MQTT 3.1.1 broker (no user properties)", () => {
  const [pg, aedes] = useClusterAndAedes();

  it("makes run with a signing key stop at start with exit 2: there is nowhere to put the signature", async () => {
    await pg.query("CREATE TABLE t_users (id_user int PRIMARY KEY)");
    const { child, output } = runCli(["run", "--database-url", pg.url, "--mqtt-url", aedes.url, "--tables", "t_users", "--signing-key-file", keyFile]);
    expect(await exited(child, 60_000)).toBe(2);
    expect(output().stderr).toMatch(/speaks only MQTT 3\.1\.1, which has no user properties to carry the signature/);
  });
});
