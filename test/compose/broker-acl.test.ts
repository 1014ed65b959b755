import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import mqtt, { type MqttClient } from "mqtt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Broker, startBroker } from "../harness/broker.js";
import { waitFor } from "../harness/ports.js";

/**
 * Issue 14 item 6, docker-compose.yml's broker without Docker: docker/init-secrets.sh generates the
 * passwords (as the `secrets` step does), a real Mosquitto 2 runs docker/mosquitto.conf (its
 * listener and paths moved to this test's) with docker/mosquitto.acl, and real clients check who
 * may do what. Before: `allow_anonymous true`, anyone could publish RPC requests and events.
 */
const ROOT = join(import.meta.dirname, "..", "..");
const uid = String(process.getuid?.() ?? 0);
let secrets: string;
let broker: Broker;
const clients: MqttClient[] = [];

function password(user: string): string {
  return readFileSync(join(secrets, `mqtt-${user}.password`), "utf8");
}

async function connect(user?: string): Promise<MqttClient> {
  const client = await mqtt.connectAsync(broker.url, { protocolVersion: 5, clean: true, reconnectPeriod: 0, ...(user ? { username: user, password: password(user) } : {}) });
  clients.push(client);
  return client;
}

/** Messages a client receives, by topic. */
function inbox(client: MqttClient): { topic: string; payload: string }[] {
  const got: { topic: string; payload: string }[] = [];
  client.on("message", (topic, payload) => got.push({ topic, payload: payload.toString() }));
  return got;
}

beforeAll(async () => {
  secrets = mkdtempSync(join(tmpdir(), "tera-cdc-secrets-"));
  execFileSync("sh", [join(ROOT, "docker/init-secrets.sh")], { env: { ...process.env, SECRETS_DIR: secrets, MOSQUITTO_UID: uid, TERA_CDC_UID: uid }, stdio: "pipe" });
  const conf = readFileSync(join(ROOT, "docker/mosquitto.conf"), "utf8")
    .split("\n")
    .filter((line) => line.trim() !== "" && !line.startsWith("#") && !line.startsWith("persistence"))
    .map((line) => (line === "listener 1883" ? "listener {port} 127.0.0.1" : line))
    .map((line) => line.replace("/secrets/", `${secrets}/`).replace("/mosquitto/config/acl", join(ROOT, "docker/mosquitto.acl")));
  broker = await startBroker({ config: conf });
}, 60_000);

afterAll(async () => {
  await Promise.all(clients.map((c) => c.endAsync(true).catch(() => {})));
  await broker?.close();
});

describe("docker-compose's broker: passwords and an ACL, generated at the first start", () => {
  it("generates owner-only password files, hashes in Mosquitto's file, and keeps them on a second start", () => {
    for (const file of ["mqtt-tera-cdc.password", "mqtt-ops.password", "passwd"]) expect(statSync(join(secrets, file)).mode & 0o077, file).toBe(0);
    const before = [password("tera-cdc"), password("ops")];
    for (const p of before) expect(p).toMatch(/^[A-Za-z0-9]{32}$/);
    expect(before[0]).not.toBe(before[1]);
    const hashed = readFileSync(join(secrets, "passwd"), "utf8");
    expect(hashed).toMatch(/^tera-cdc:\$7\$/m);
    for (const p of before) expect(hashed).not.toContain(p);
    execFileSync("sh", [join(ROOT, "docker/init-secrets.sh")], { env: { ...process.env, SECRETS_DIR: secrets, MOSQUITTO_UID: uid, TERA_CDC_UID: uid }, stdio: "pipe" });
    expect([password("tera-cdc"), password("ops")]).toEqual(before);
  });

  it("refuses anonymous clients and wrong passwords", async () => {
    await expect(mqtt.connectAsync(broker.url, { protocolVersion: 5, reconnectPeriod: 0, connectTimeout: 5000 })).rejects.toThrow(/not authori[sz]ed|bad user name or password/i);
    await expect(mqtt.connectAsync(broker.url, { protocolVersion: 5, reconnectPeriod: 0, connectTimeout: 5000, username: "ops", password: "guess" })).rejects.toThrow(/not authori[sz]ed|bad user name or password/i);
  });

  it("lets only tera-cdc publish events and only ops publish RPC requests", async () => {
    const cdc = await connect("tera-cdc");
    const ops = await connect("ops");
    const cdcInbox = inbox(cdc);
    const opsInbox = inbox(ops);
    await cdc.subscribeAsync("module/tera-cdc/rpc", { qos: 1 });
    await ops.subscribeAsync("module/TeraServer/DatabaseModule/events/#", { qos: 1 });
    // Refused publishes first, each followed by an allowed one from the same client: once the
    // allowed one arrives, the refused one would have too.
    await cdc.publishAsync("module/tera-cdc/rpc", "forged request from tera-cdc", { qos: 0 });
    await ops.publishAsync("module/TeraServer/DatabaseModule/events/project", "forged event from ops", { qos: 0 });
    await ops.publishAsync("module/tera-cdc/rpc", "request from ops", { qos: 1 });
    await cdc.publishAsync("module/TeraServer/DatabaseModule/events/device", "event from tera-cdc", { qos: 1 });
    await waitFor("the allowed messages", () => cdcInbox.length >= 1 && opsInbox.length >= 1, 10_000);
    expect(cdcInbox).toEqual([{ topic: "module/tera-cdc/rpc", payload: "request from ops" }]);
    expect(opsInbox).toEqual([{ topic: "module/TeraServer/DatabaseModule/events/device", payload: "event from tera-cdc" }]);
  });

  it("answers on reply topics only their owner reads", async () => {
    const cdc = await connect("tera-cdc");
    const ops = await connect("ops");
    const opsInbox = inbox(ops);
    await ops.subscribeAsync("tera-cdc/cli/#", { qos: 1 });
    await cdc.publishAsync("tera-cdc/cli/someone-else/reply", "not for ops", { qos: 1 });
    await cdc.publishAsync("tera-cdc/cli/ops/x/reply", "for ops", { qos: 1 });
    await waitFor("the reply for ops", () => opsInbox.length >= 1, 10_000);
    expect(opsInbox.map((m) => m.payload)).toEqual(["for ops"]);
  });
});
