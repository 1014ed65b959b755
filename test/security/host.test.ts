import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { embeddedBanner } from "../../src/embedded/banner.js";
import { redactUrl } from "../../src/redact.js";
import { startBroker } from "../harness/broker.js";
import { type CdcProcess, runCli, startCdc } from "../harness/cdc.js";
import { freePort, waitFor } from "../harness/ports.js";
import { exited } from "../harness/processes.js";
import { useClusterAndBroker } from "../harness/servers.js";

/**
 * Issue 14, "Medium and low", the host's side: what listens where, SIGTERM in every retry loop,
 * and bad input that exits 2. Each test names its reproduction; each failed on main before the fix.
 */

/** Addresses (hex as in /proc/net/tcp*) listening on a TCP port: 0100007F is 127.0.0.1, 00000000 every interface. */
function listeners(port: number): string[] {
  const hexPort = port.toString(16).toUpperCase().padStart(4, "0");
  const out: string[] = [];
  for (const file of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    for (const line of readFileSync(file, "utf8").split("\n").slice(1)) {
      const fields = line.trim().split(/\s+/);
      if (fields.length < 4) continue;
      const [address, portHex] = fields[1]!.split(":");
      if (portHex === hexPort && fields[3] === "0A") out.push(address!);
    }
  }
  return out;
}
const LOOPBACK = "0100007F";

function rulesFile(): string {
  const file = join(mkdtempSync(join(tmpdir(), "tera-cdc-rules-")), "rules.yaml");
  writeFileSync(file, "models:\n  device:\n    rows:\n      - { column: id_site, in-claim: sites }\n");
  return file;
}

const [pgServer, broker] = useClusterAndBroker();

beforeAll(async () => {
  await pgServer.query("CREATE TABLE t_devices (id_device int PRIMARY KEY, device_name text)");
}, 60_000);

describe("what listens where", () => {
  it("reproduction '/healthz and /metrics listen on 0.0.0.0': they listen on 127.0.0.1 unless --health-host says otherwise", async () => {
    const cdc = await startCdc({ databaseUrl: pgServer.url, mqttUrl: broker.url, args: ["--tables", "t_devices", "--slot", "host_a", "--publication", "host_a"] });
    try {
      expect(listeners(cdc.healthPort)).toEqual([LOOPBACK]);
    } finally {
      await cdc.stop();
    }
    const open = await startCdc({ databaseUrl: pgServer.url, mqttUrl: broker.url, args: ["--tables", "t_devices", "--slot", "host_a", "--publication", "host_a", "--health-host", "0.0.0.0"] });
    try {
      expect(listeners(open.healthPort)).toEqual(["00000000"]);
    } finally {
      await open.stop();
    }
  }, 90_000);

  it("reproduction 'the gateway defaults to 0.0.0.0': it binds 127.0.0.1 unless --host says otherwise", async () => {
    const port = await freePort();
    const gateway = runCli(["gateway", "--mqtt-url", broker.url, "--port", String(port), "--rules", rulesFile()], { TERA_CDC_GATEWAY_AUTH_SECRET: "s".repeat(40) });
    try {
      await waitFor("the gateway to listen", () => {
        if (gateway.child.exitCode !== null) throw new Error(`gateway exited ${gateway.child.exitCode}: ${gateway.output().stderr}`);
        return listeners(port).length > 0;
      }, 60_000, 100);
      expect(listeners(port)).toEqual([LOOPBACK]);
    } finally {
      gateway.child.kill("SIGTERM");
      await exited(gateway.child, 20_000);
    }
  }, 90_000);
});

async function stopsWithin10s(cdc: CdcProcess, waitingFor: RegExp): Promise<void> {
  await cdc.waitForLog(waitingFor, 60_000);
  const sent = Date.now();
  cdc.child.kill("SIGTERM");
  const code = await exited(cdc.child, 30_000);
  const took = Date.now() - sent;
  expect(took, cdc.logs().slice(-2000)).toBeLessThan(10_000);
  expect(code).not.toBeNull();
}
describe("SIGTERM in every retry loop", () => {


  it("reproduction 'run ignores SIGTERM while the broker is unreachable at start': it stops within 10 s", async () => {
    const nobody = await freePort();
    const cdc = await startCdc({ databaseUrl: pgServer.url, mqttUrl: `mqtt://127.0.0.1:${nobody}`, args: ["--tables", "t_devices", "--slot", "host_b", "--publication", "host_b"], waitStreaming: false });
    // Past the first attempts: the retry loop is running.
    await waitFor("a few connection attempts", () => (cdc.logs().match(/ECONNREFUSED|broker|connect/gi)?.length ?? 0) >= 2 || undefined, 60_000, 200).catch(() => {});
    await stopsWithin10s(cdc, /starting/);
  }, 90_000);

  it("reproduction 'run ignores SIGTERM while the broker refuses its password at start': it stops within 10 s", async () => {
    const dir = mkdtempSync(join(tmpdir(), "tera-cdc-passwd-"));
    execFileSync("mosquitto_passwd", ["-c", "-b", join(dir, "passwd"), "cdc", "right-password"], { stdio: "pipe" });
    const locked = await startBroker({ config: ["allow_anonymous false", "password_file {dir}/passwd", "listener {port} 127.0.0.1"], files: { passwd: readFileSync(join(dir, "passwd"), "utf8") } });
    try {
      const cdc = await startCdc({
        databaseUrl: pgServer.url,
        mqttUrl: locked.url,
        args: ["--tables", "t_devices", "--slot", "host_c", "--publication", "host_c", "--mqtt-username", "cdc", "--mqtt-password", "wrong-password"],
        waitStreaming: false,
      });
      await waitFor("the refusal to be logged", () => /not authori[sz]ed|bad user name or password|refused/i.test(cdc.logs()) || undefined, 60_000, 200).catch(() => {});
      await stopsWithin10s(cdc, /starting/);
      expect(cdc.logs()).not.toContain("wrong-password");
    } finally {
      await locked.close();
    }
  }, 90_000);
});

describe("credentials in what is shown", () => {
  // Already true on main when this file was written (src/ops/redact.ts and the banner were reworked by then); kept as a guard.
  it("reproduction 'the banner prints an MQTT password given in --mqtt-url; postgres://u:p@ss@... is redacted wrongly'", () => {
    const cases: [string, string][] = [
      ["postgres://u:p@ss@db.example:5432/app", "postgres://u:redacted@db.example:5432/app"],
      ["postgres://u:p/ss@db.example/app", "postgres://u:redacted@db.example/app"],
      ["mqtt://cdc:hunter2@broker:1883", "mqtt://cdc:redacted@broker:1883"],
      ["mqtt://cdc:pa#ss@broker:1883", "mqtt://cdc:redacted@broker:1883"],
      ["postgres://u@db/app?password=hunter2&sslmode=require", "postgres://u@db/app?password=redacted&sslmode=require"],
    ];
    for (const [url, shown] of cases) expect(redactUrl(url), url).toBe(shown);
    const banner = embeddedBanner({ mqttUrl: "mqtt://cdc:hunter2@broker:1883", database: { url: "postgres://postgres@127.0.0.1:5999/opentera", dir: "/tmp/x", pgpassFile: "/tmp/x/pgpass" } });
    expect(banner).not.toContain("hunter2");
  });

  it("SIGTERM during a broker outage while streaming: it stops within 10 s (what was in flight is not confirmed, so it is sent again after a restart)", async () => {
    const own = await startBroker();
    const cdc = await startCdc({ databaseUrl: pgServer.url, mqttUrl: own.url, args: ["--tables", "t_devices", "--slot", "host_f", "--publication", "host_f"] });
    try {
      await own.stop();
      await pgServer.query("INSERT INTO t_devices SELECT g, 'outage' FROM generate_series(1000, 1100) g");
      await cdc.waitForLog(/broker connection lost/, 30_000);
      // Changes now wait in flight for a broker that does not answer.
      await waitFor("changes in flight", async () => Number((await cdc.health()).body.inFlight ?? 0) > 0 || undefined, 30_000, 100);
      await stopsWithin10s(cdc, /broker connection lost/);
    } finally {
      if (cdc.child.exitCode === null) await cdc.kill();
      await own.close();
    }
  }, 90_000);
});

describe("bad input exits 2", () => {
  async function exitCode(args: string[]): Promise<{ code: number | null; stderr: string }> {
    const run = runCli(args);
    const code = await exited(run.child, 60_000);
    return { code, stderr: run.output().stderr };
  }

  // This one already exited 2 on main when the file was written (another change fixed it); kept as a guard.
  it("reproduction 'a missing table exits 1': 2, with one line naming the table", async () => {
    const { code, stderr } = await exitCode(["run", "--database-url", pgServer.url, "--mqtt-url", broker.url, "--tables", "t_nothing_here", "--slot", "host_d", "--publication", "host_d"]);
    expect(code, stderr).toBe(2);
    expect(stderr).toMatch(/t_nothing_here/);
  }, 90_000);

  it("reproduction 'a bad slot name exits 1': 2, with one line saying what a slot name may hold", async () => {
    const { code, stderr } = await exitCode(["run", "--database-url", pgServer.url, "--mqtt-url", broker.url, "--tables", "t_devices", "--slot", "Bad-Slot!", "--publication", "host_e"]);
    expect(code, stderr).toBe(2);
    expect(stderr).toMatch(/slot/);
  }, 90_000);

  it("reproduction 'a taken gateway port exits 1': 2, with one line naming the port", async () => {
    const taken: Server = createServer();
    const port = await freePort();
    await new Promise<void>((resolve) => taken.listen(port, "127.0.0.1", () => resolve()));
    try {
      const run = runCli(["gateway", "--mqtt-url", broker.url, "--port", String(port), "--host", "127.0.0.1", "--rules", rulesFile()], { TERA_CDC_GATEWAY_AUTH_SECRET: "s".repeat(40) });
      const code = await exited(run.child, 60_000);
      expect(code, run.output().stderr).toBe(2);
      expect(run.output().stderr).toMatch(new RegExp(String(port)));
    } finally {
      taken.close();
    }
  }, 90_000);
});
