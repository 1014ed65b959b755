import { execFileSync } from "node:child_process";
import { chownSync, chmodSync, copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Broker, startBroker } from "../harness/broker.js";
import { type CdcProcess, runCli, startCdc } from "../harness/cdc.js";
import { startConsumer } from "../harness/consumer.js";
import { freePort } from "../harness/ports.js";
import { type PostgresServer, startPostgres } from "../harness/postgres.js";
import { exited } from "../harness/processes.js";
import { makeTestCertificates, type TestCertificates } from "./certs.js";

/**
 * Issue 4 item 13: TLS and passwords on both sides, against servers that require them.
 *  - Mosquitto: TLS only, no anonymous clients, users from a mosquitto_passwd file; one listener
 *    also requires a client certificate signed by the test CA, the other does not.
 *  - PostgreSQL: ssl=on with a server certificate from the test CA; the role tera-cdc uses may
 *    only connect over TLS with its scram password (pg_hba), so a plain connection is refused.
 * Neither password may show up in tera-cdc's logs, errors, /healthz or /metrics.
 */
const MQTT_USER = "cdc";
const MQTT_PASSWORD = "mqtt-Pa55-w0rd-9f3a";
const PG_USER = "cdc_user";
const PG_PASSWORD = "pg-Pa55-w0rd-71c2";
const SECRETS = [MQTT_PASSWORD, PG_PASSWORD, encodeURIComponent(MQTT_PASSWORD), encodeURIComponent(PG_PASSWORD)];

let certs: TestCertificates;
let pg: PostgresServer;
let broker: Broker;
/** Listener that requires a client certificate (broker.url is the one that does not). */
let certPort: number;
let pgFilesDir: string;

function mosquittoPasswordFile(): string {
  const file = join(mkdtempSync(join(tmpdir(), "tera-cdc-passwd-")), "passwd");
  execFileSync("mosquitto_passwd", ["-c", "-b", file, MQTT_USER, MQTT_PASSWORD], { stdio: "pipe" });
  execFileSync("mosquitto_passwd", ["-b", file, "reader", "reader-pw"], { stdio: "pipe" });
  return readFileSync(file, "utf8");
}

/** Server key and certificate for PostgreSQL: owned by the postgres user, mode 0600, as it insists. */
function postgresFiles(): Record<string, string> {
  pgFilesDir = mkdtempSync(join(tmpdir(), "tera-cdc-pgtls-"));
  const uid = Number(execFileSync("id", ["-u", "postgres"]).toString());
  const gid = Number(execFileSync("id", ["-g", "postgres"]).toString());
  const hba = join(pgFilesDir, "pg_hba.conf");
  writeFileSync(
    hba,
    [
      `hostssl all ${PG_USER} 127.0.0.1/32 scram-sha-256`,
      `hostssl replication ${PG_USER} 127.0.0.1/32 scram-sha-256`,
      `host all ${PG_USER} 127.0.0.1/32 reject`,
      `host replication ${PG_USER} 127.0.0.1/32 reject`,
      "local all all trust",
      "host all all 127.0.0.1/32 trust",
      "host replication all 127.0.0.1/32 trust",
      "",
    ].join("\n"),
  );
  copyFileSync(certs.serverCert, join(pgFilesDir, "server.crt"));
  copyFileSync(certs.serverKey, join(pgFilesDir, "server.key"));
  for (const name of ["", "pg_hba.conf", "server.crt", "server.key"]) chownSync(join(pgFilesDir, name), uid, gid);
  chmodSync(join(pgFilesDir, "server.key"), 0o600);
  return { ssl: "on", ssl_cert_file: join(pgFilesDir, "server.crt"), ssl_key_file: join(pgFilesDir, "server.key"), hba_file: hba };
}

beforeAll(async () => {
  certs = makeTestCertificates();
  certPort = await freePort();
  const tls = ["cafile {dir}/ca.crt", "certfile {dir}/server.crt", "keyfile {dir}/server.key"];
  [pg, broker] = await Promise.all([
    startPostgres({ settings: postgresFiles() }),
    startBroker({
      scheme: "mqtts",
      files: {
        "ca.crt": certs.read(certs.caCert),
        "server.crt": certs.read(certs.serverCert),
        "server.key": certs.read(certs.serverKey),
        passwd: mosquittoPasswordFile(),
      },
      config: [
        "per_listener_settings false",
        "allow_anonymous false",
        "password_file {dir}/passwd",
        "listener {port} 127.0.0.1",
        ...tls,
        "require_certificate false",
        `listener ${certPort} 127.0.0.1`,
        ...tls,
        "require_certificate true",
      ],
    }),
  ]);
  await pg.query(`CREATE ROLE ${PG_USER} LOGIN SUPERUSER REPLICATION PASSWORD '${PG_PASSWORD}'`);
}, 120_000);

afterAll(async () => {
  await Promise.all([pg?.close(), broker?.close()]);
  rmSync(certs.dir, { recursive: true, force: true });
  if (pgFilesDir) rmSync(pgFilesDir, { recursive: true, force: true });
});

function databaseUrl(query: string, password = PG_PASSWORD): string {
  return `postgres://${PG_USER}:${encodeURIComponent(password)}@127.0.0.1:${pg.port}/postgres${query}`;
}

const certArgs = () => ["--mqtt-ca", certs.caCert, "--mqtt-cert", certs.clientCert, "--mqtt-key", certs.clientKey];

/** Everything tera-cdc says about itself: logs, /healthz and /metrics. */
async function everythingSaid(cdc: CdcProcess): Promise<string> {
  const health = await fetch(`http://127.0.0.1:${cdc.healthPort}/healthz`).then((r) => r.text()).catch(() => "");
  const metrics = await fetch(`http://127.0.0.1:${cdc.healthPort}/metrics`).then((r) => r.text()).catch(() => "");
  return `${cdc.logs()}\n${health}\n${metrics}`;
}

function expectNoSecrets(text: string): void {
  for (const secret of SECRETS) expect(text).not.toContain(secret);
}

async function tlsSessionsOf(user: string): Promise<{ backend: string; ssl: boolean }[]> {
  const rows = await pg.query(
    "SELECT a.backend_type AS backend, s.ssl FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) WHERE a.usename = $1 ORDER BY 1",
    [user],
  );
  return rows.rows as { backend: string; ssl: boolean }[];
}

describe("TLS and passwords to the broker and to PostgreSQL", () => {
  it("streams over mqtts:// with a client certificate and a password, and PostgreSQL over TLS (sslmode=require)", async () => {
    await pg.query("CREATE TABLE t_sites (id_site int PRIMARY KEY, site_name text)");
    const consumer = await startConsumer(`mqtts://127.0.0.1:${certPort}`, undefined, {
      ca: readFileSync(certs.caCert),
      cert: readFileSync(certs.clientCert),
      key: readFileSync(certs.clientKey),
      username: "reader",
      password: "reader-pw",
    });
    // The password comes from the environment, as a deployment would give it.
    const cdc = await startCdc({
      databaseUrl: databaseUrl("?sslmode=require"),
      mqttUrl: `mqtts://127.0.0.1:${certPort}`,
      args: ["--tables", "t_sites", "--slot", "tls_full", "--publication", "tls_full", "--mqtt-username", MQTT_USER, ...certArgs()],
      env: { TERA_CDC_MQTT_PASSWORD: MQTT_PASSWORD },
    });
    try {
      await pg.query("INSERT INTO t_sites VALUES (1, 'Sherbrooke'), (2, 'Montréal')");
      const events = await consumer.waitForCount(2);
      expect(events.map((e) => e.object)).toEqual([
        { id_site: 1, site_name: "Sherbrooke" },
        { id_site: 2, site_name: "Montréal" },
      ]);
      // Every connection tera-cdc holds to PostgreSQL, the walsender included, is encrypted.
      const sessions = await tlsSessionsOf(PG_USER);
      expect(sessions.map((s) => s.backend)).toContain("walsender");
      expect(sessions.every((s) => s.ssl)).toBe(true);
      const health = await cdc.health();
      expect(health.status).toBe(200);
      expectNoSecrets(await everythingSaid(cdc));
    } finally {
      expect(await cdc.stop()).toBe(0);
      await consumer.close();
    }
    expectNoSecrets(cdc.logs());
  });

  it("streams with a CA file and a password only, where the broker asks no client certificate; PostgreSQL with verify-full", async () => {
    await pg.query("CREATE TABLE t_rooms (id_room int PRIMARY KEY, room_name text)");
    const consumer = await startConsumer(broker.url, undefined, { ca: readFileSync(certs.caCert), username: "reader", password: "reader-pw" });
    const cdc = await startCdc({
      databaseUrl: databaseUrl(`?sslmode=verify-full&sslrootcert=${encodeURIComponent(certs.caCert)}`),
      mqttUrl: broker.url,
      args: ["--tables", "t_rooms", "--slot", "tls_ca", "--publication", "tls_ca", "--mqtt-username", MQTT_USER, "--mqtt-password", MQTT_PASSWORD, "--mqtt-ca", certs.caCert],
    });
    try {
      await pg.query("INSERT INTO t_rooms VALUES (7, 'lab')");
      const [event] = await consumer.waitForCount(1);
      expect(event!.object).toEqual({ id_room: 7, room_name: "lab" });
      expectNoSecrets(await everythingSaid(cdc));
    } finally {
      expect(await cdc.stop()).toBe(0);
      await consumer.close();
    }
  });

  it("a wrong broker password: not streaming, /healthz 503, the refusal logged without the password", async () => {
    await pg.query("CREATE TABLE t_badpw (id_badpw int PRIMARY KEY)");
    const wrong = "wrong-Pa55-c0de-e1";
    const cdc = await startCdc({
      databaseUrl: databaseUrl("?sslmode=require"),
      mqttUrl: broker.url,
      args: ["--tables", "t_badpw", "--slot", "badpw", "--publication", "badpw", "--mqtt-username", MQTT_USER, "--mqtt-password", wrong, "--mqtt-ca", certs.caCert],
      waitStreaming: false,
    });
    try {
      await cdc.waitForLog(/broker unreachable[^\n]*(not authori[sz]ed|bad user ?name or password)/i);
      const health = await cdc.health();
      expect(health.status).toBe(503);
      const said = await everythingSaid(cdc);
      expect(said).not.toContain(wrong);
      expectNoSecrets(said);
    } finally {
      await cdc.kill();
    }
  });

  it("a broker certificate from an untrusted CA is refused and logged", async () => {
    await pg.query("CREATE TABLE t_badca (id_badca int PRIMARY KEY)");
    const cdc = await startCdc({
      databaseUrl: databaseUrl("?sslmode=require"),
      mqttUrl: broker.url,
      args: ["--tables", "t_badca", "--slot", "badca", "--publication", "badca", "--mqtt-username", MQTT_USER, "--mqtt-password", MQTT_PASSWORD, "--mqtt-ca", certs.otherCaCert],
      waitStreaming: false,
    });
    try {
      await cdc.waitForLog(/broker unreachable[^\n]*(self[- ]signed|certificate|verify)/i);
      expect((await cdc.health()).status).toBe(503);
      expectNoSecrets(await everythingSaid(cdc));
    } finally {
      await cdc.kill();
    }
  });

  it("without a client certificate the listener that requires one refuses tera-cdc", async () => {
    await pg.query("CREATE TABLE t_nocert (id_nocert int PRIMARY KEY)");
    const cdc = await startCdc({
      databaseUrl: databaseUrl("?sslmode=require"),
      mqttUrl: `mqtts://127.0.0.1:${certPort}`,
      args: ["--tables", "t_nocert", "--slot", "nocert", "--publication", "nocert", "--mqtt-username", MQTT_USER, "--mqtt-password", MQTT_PASSWORD, "--mqtt-ca", certs.caCert],
      waitStreaming: false,
    });
    try {
      await cdc.waitForLog(/broker unreachable/);
      expect((await cdc.health()).status).toBe(503);
      expectNoSecrets(await everythingSaid(cdc));
    } finally {
      await cdc.kill();
    }
  });

  // PostgreSQL refusals are fatal at start-up: exit code 1 and one line, without the password.
  const refusals = [
    { title: "a wrong database password", query: "?sslmode=require", password: "wrong-pg-Pa55-77", error: /password authentication failed/ },
    { title: "no TLS where pg_hba requires it", query: "?sslmode=disable", password: PG_PASSWORD, error: /pg_hba\.conf rejects|no encryption/ },
    { title: "a server certificate from an untrusted CA (verify-full)", query: "?sslmode=verify-full&sslrootcert={otherCa}", password: PG_PASSWORD, error: /certificate|self[- ]signed|verify/i },
  ];
  it.for(refusals.map((r) => [r.title, r] as const))("refused by PostgreSQL: %s", async ([, r]) => {
    const url = databaseUrl(r.query.replace("{otherCa}", encodeURIComponent(certs.otherCaCert)), r.password);
    const { child, output } = runCli(["run", "--database-url", url, "--mqtt-url", broker.url, "--tables", "t_sites", "--slot", "refused", "--mqtt-ca", certs.caCert]);
    expect(await exited(child, 30_000)).toBe(1);
    const { stderr } = output();
    const last = stderr.trim().split("\n").at(-1)!;
    expect(last).toMatch(r.error);
    for (const secret of [...SECRETS, r.password]) expect(stderr).not.toContain(secret);
  });
});
