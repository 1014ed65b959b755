import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import mqtt from "mqtt";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli } from "../harness/cdc.js";
import { waitFor } from "../harness/ports.js";
import { exited } from "../harness/processes.js";

/**
 * Issue 14, "Embedded PostgreSQL trusts every local user on 127.0.0.1 as superuser (COPY ... TO
 * PROGRAM ran); aedes has no authentication". The embedded default (`npm start`) with the aedes
 * broker (the fallback when Mosquitto is not installed; chosen here by TERA_CDC_EMBEDDED_BROKER,
 * which older versions ignore, as aedes was their only broker): another local user or program
 * connecting to either must be refused, and only tera-cdc's own identity may publish events.
 */
const dataDir = mkdtempSync(join(tmpdir(), "tera-cdc-embedded-security-"));
chmodSync(dataDir, 0o755);
// In /tmp itself: the server runs as the postgres user, who could not write into dataDir.
const marker = join(tmpdir(), `tera-cdc-copy-to-program-ran-${process.pid}`);
const STEP_MS = 90_000;
const EVENT_TOPIC = "module/TeraServer/DatabaseModule/events/device";

let cli: ReturnType<typeof runCli>;
let ports: { postgresPort: number; brokerPort: number };

beforeAll(async () => {
  cli = runCli(["run", "--data-dir", dataDir], {
    TERA_CDC_DATABASE_URL: "",
    TERA_CDC_MQTT_URL: "",
    TERA_CDC_TABLES: "",
    TERA_CDC_PRESET: "",
    TERA_CDC_EMBEDDED_BROKER: "aedes",
  });
  await waitFor(
    "the embedded default to stream",
    () => {
      if (cli.child.exitCode !== null) throw new Error(`tera-cdc exited ${cli.child.exitCode}: ${cli.output().stderr.slice(-2000)}`);
      return cli.output().stdout.includes("tera-cdc is streaming");
    },
    STEP_MS,
    100,
  );
  ports = JSON.parse(readFileSync(join(dataDir, "embedded.json"), "utf8"));
}, STEP_MS + 10_000);

afterAll(async () => {
  if (cli && cli.child.exitCode === null) {
    cli.child.kill("SIGINT");
    await exited(cli.child, 60_000).catch(() => cli.child.kill("SIGKILL"));
  }
  rmSync(dataDir, { recursive: true, force: true });
  rmSync(marker, { force: true });
}, 70_000);

/** Connects as `user` (with `password`, if any) and tries to run a program on the host. */
async function tryCopyToProgram(user: string, password?: string): Promise<string> {
  const client = new pg.Client({ host: "127.0.0.1", port: ports.postgresPort, user, password: password ?? "", database: "postgres", connectionTimeoutMillis: 10_000 });
  client.on("error", () => {});
  try {
    await client.connect();
    await client.query(`COPY (SELECT 1) TO PROGRAM 'touch ${marker}'`);
    return "ran";
  } catch (error) {
    return (error as Error).message;
  } finally {
    await client.end().catch(() => {});
  }
}

function connectBroker(options: mqtt.IClientOptions): Promise<mqtt.MqttClient> {
  return mqtt.connectAsync(`mqtt://127.0.0.1:${ports.brokerPort}`, { protocolVersion: 4, reconnectPeriod: 0, connectTimeout: 10_000, ...options });
}

function secrets(): { postgresPassword: string; broker: { publisher: { username: string; password: string }; local: { username: string; password: string } } } {
  return JSON.parse(readFileSync(join(dataDir, "credentials.json"), "utf8"));
}

describe("embedded PostgreSQL: no trust for local users", () => {
  it("refuses the superuser and any other name without the generated password, so COPY ... TO PROGRAM cannot run", async () => {
    expect(await tryCopyToProgram("postgres")).toMatch(/password/i);
    expect(await tryCopyToProgram("postgres", "guessed")).toMatch(/password authentication failed/);
    expect(await tryCopyToProgram("mallory")).toMatch(/password/i);
    expect(existsSync(marker)).toBe(false);
  });

  it("keeps the generated credentials in files only their owner can read, and never prints them", () => {
    expect(statSync(join(dataDir, "credentials.json")).mode & 0o777).toBe(0o600);
    expect(statSync(join(dataDir, "pgpass")).mode & 0o777).toBe(0o600);
    const s = secrets();
    const printed = cli.output().stdout + cli.output().stderr;
    for (const secret of [s.postgresPassword, s.broker.publisher.password, s.broker.local.password]) {
      expect(printed).not.toContain(secret);
      expect(printed).not.toContain(encodeURIComponent(secret));
    }
  });
});

describe("embedded aedes broker: authentication and who may publish events", () => {
  it("refuses clients without credentials or with a wrong password", async () => {
    await expect(connectBroker({})).rejects.toThrow(/not authori[sz]ed|bad user ?name or password/i);
    await expect(connectBroker({ username: "tera-cdc", password: "guessed" })).rejects.toThrow(/not authori[sz]ed|bad user ?name or password/i);
  });

  it("lets only tera-cdc's identity publish on event topics: the local commands' identity cannot forge an event", async () => {
    const { local } = secrets().broker;
    const subscriber = await connectBroker({ username: local.username, password: local.password });
    const received: { topic: string; payload: string }[] = [];
    subscriber.on("message", (topic, payload) => received.push({ topic, payload: payload.toString("latin1") }));
    await subscriber.subscribeAsync("module/TeraServer/DatabaseModule/events/#", { qos: 1 });
    const forger = await connectBroker({ username: local.username, password: local.password });
    forger.on("error", () => {});
    // QoS 0: the publish is not acknowledged either way; what matters is whether it is delivered.
    await forger.publishAsync(EVENT_TOPIC, "forged-by-a-local-client", { qos: 0 }).catch(() => {});
    await forger.endAsync(true).catch(() => {});
    // A real change, published by tera-cdc after the forgery: once it is here, the forgery would be too.
    const db = new pg.Client({ host: "127.0.0.1", port: ports.postgresPort, user: "postgres", password: secrets().postgresPassword, database: "opentera" });
    await db.connect();
    try {
      await db.query("UPDATE t_devices SET device_name = 'Renamed by the security test' WHERE id_device = 1");
    } finally {
      await db.end();
    }
    await waitFor("the real change", () => received.some((m) => m.payload.includes("Renamed by the security test")), 60_000, 100);
    expect(received.filter((m) => m.payload.includes("forged"))).toEqual([]);
    await subscriber.endAsync();
  }, 90_000);
});

describe("embedded default: RPC on, because only the local commands may call it", () => {
  // Issue 14 item 2: RPC is on by default only where the broker authenticates and an ACL limits
  // who may publish requests: the embedded broker is that case (the local identity may publish on
  // module/+/rpc, nobody else may connect). tera-cdc snapshot finds the credentials itself.
  it("answers tera-cdc snapshot --data-dir with a structured --where filter", async () => {
    const snap = runCli(["snapshot", "device", "--data-dir", dataDir, "--where", "id_device = 1", "--json"], { TERA_CDC_MQTT_URL: "" });
    expect(await exited(snap.child, 60_000), snap.output().stderr).toBe(0);
    expect(JSON.parse(snap.output().stdout.trim())).toMatchObject({ status: "done", rows: 1, where: "id_device = 1" });
  }, 90_000);
});
