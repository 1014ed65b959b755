// Issue 14, the gateway reproductions ("High: consumers trust any publisher" and the gateway
// sessions of "Medium and low"), against a real `run`, a real Mosquitto and real WebSocket clients.
// The gateway runs in-process, so options the code before the fix did not know (signingKey,
// allowNoExp) were simply ignored there: the attacks went through and these tests fail.
import { readFileSync } from "node:fs";
import { SignJWT } from "jose";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { WebSocket } from "ws";
import { createVerifier, SUBPROTOCOL } from "../../src/gateway/auth.js";
import { Gateway, type GatewayOptions } from "../../src/gateway/server.js";
import { createLogger } from "../../src/ops/log.js";
import { type CdcProcess, startCdc } from "../harness/cdc.js";
import { waitFor } from "../harness/ports.js";
import { connectClient, gatewayOptions, SECRET, subscribe, type TestClient, token } from "../gateway/support.js";
import { positionProperties, publishForgeries, signingKeyFile } from "./support/forge.js";
import { useClusterAndBroker } from "../harness/servers.js";

const [pg, broker] = useClusterAndBroker();
let cdc: CdcProcess;
const keyFile = signingKeyFile();
const gateways: Gateway[] = [];
const clients: TestClient[] = [];
let nextId = 1000;

beforeAll(async () => {
  await pg.query("CREATE TABLE t_devices (id_device int PRIMARY KEY, id_site int NOT NULL, device_name text NOT NULL)");
  cdc = await startCdc({ databaseUrl: pg.url, mqttUrl: broker.url, args: ["--tables", "t_devices"], env: { TERA_CDC_SIGNING_KEY_FILE: keyFile } });
  await cdc.waitForStreaming();
}, 120_000);

afterEach(async () => {
  for (const c of clients.splice(0)) c.socket.terminate();
  for (const g of gateways.splice(0)) await g.stop();
});

afterAll(async () => {
  await cdc?.stop();
});

async function startGateway(overrides: Partial<GatewayOptions> = {}, logLines?: string[]): Promise<Gateway> {
  const gateway = new Gateway(
    gatewayOptions(broker.url, {
      logger: createLogger("info", { fd: 2, format: "json", ...(logLines ? { tee: (line: string) => logLines.push(line) } : {}) }),
      ...overrides,
    }),
  );
  gateways.push(gateway);
  await gateway.start();
  return gateway;
}

async function client(gateway: Gateway, jwt: string): Promise<TestClient> {
  const c = await connectClient(gateway.port, jwt);
  clients.push(c);
  return c;
}

const insertDevice = async (site: number, name: string) => {
  const id = nextId++;
  await pg.query("INSERT INTO t_devices VALUES ($1, $2, $3)", [id, site, name]);
  return id;
};

describe("gateway against forged events", () => {
  it("reproduction 'a forged create reached a tenant's browser': with the key, a forged event is dropped and counted; the real one passes", async () => {
    const gateway = await startGateway({ signingKey: readFileSync(keyFile).subarray(0, 64) });
    const tenant = await client(gateway, await token({ sub: "tenant", sites: [1] }));
    await subscribe(tenant, ["device"]);
    const [{ lsn }] = (await pg.query("SELECT pg_current_wal_lsn()::text AS lsn")).rows as [{ lsn: string }];
    await publishForgeries(broker.url, [{ model: "device", type: 1, object: { id_device: 666, id_site: 1, device_name: "forged" }, properties: positionProperties(lsn, 0, "public.t_devices", undefined, "create") }]);
    await insertDevice(1, "real");
    const [event] = await tenant.waitForEvents(1);
    expect(event!.object).toMatchObject({ id_site: 1, device_name: "real" });
    await waitFor("the forgery counted", () => (gateway.stats.unsigned === 1 ? true : undefined));
    expect(tenant.events.map((e) => e.object.device_name)).toEqual(["real"]);
  });

  it("reproduction 'one forged event with lsn=FFFFFFFF/FFFFFF00 made every later real change a duplicate': refused as far ahead, later changes pass (no key needed)", async () => {
    const gateway = await startGateway();
    const tenant = await client(gateway, await token({ sub: "tenant", sites: [2] }));
    await subscribe(tenant, ["device"]);
    await insertDevice(2, "before");
    await tenant.waitForEvents(1);
    await publishForgeries(broker.url, [{ model: "device", type: 1, object: { id_device: 667, id_site: 3, device_name: "far ahead" }, properties: positionProperties("FFFFFFFF/FFFFFF00", 0, "public.t_devices", undefined, "create") }]);
    await waitFor("the forgery refused", () => (gateway.stats.refusedPositions === 1 ? true : undefined));
    await insertDevice(2, "after");
    await tenant.waitForEvents(2);
    expect(tenant.events.map((e) => e.object.device_name)).toEqual(["before", "after"]);
    expect(gateway.stats.duplicates).toBe(0);
  });

  it("an (lsn, seq) that comes again with other content is an alert, not a silent duplicate", async () => {
    const logLines: string[] = [];
    const gateway = await startGateway({}, logLines);
    const tenant = await client(gateway, await token({ sub: "tenant", sites: [4] }));
    await subscribe(tenant, ["device"]);
    await insertDevice(4, "genuine");
    const [seen] = await tenant.waitForEvents(1);
    await publishForgeries(broker.url, [{ model: "device", type: 1, object: { id_device: 668, id_site: 4, device_name: "impostor" }, properties: positionProperties(seen!.lsn, seen!.seq, "public.t_devices", undefined, "create") }]);
    await waitFor("the conflict counted", () => (gateway.stats.conflicts === 1 ? true : undefined));
    expect(logLines.join("")).toMatch(/ALERT: a position came again with different content/);
    expect(gateway.stats.duplicates).toBe(0);
  });
});

describe("gateway sessions", () => {
  const noExp = (claims: Record<string, unknown>) => new SignJWT(claims).setProtectedHeader({ alg: "HS256" }).setIssuedAt().sign(new TextEncoder().encode(SECRET));

  async function sessionOf(gateway: Gateway, jwt: string): Promise<{ session: string; after: { lsn: string; seq: number } }> {
    const first = await client(gateway, jwt);
    const hello = await first.control("hello");
    await subscribe(first, ["device"]);
    await insertDevice(5, "seen before the disconnect");
    const [seen] = await first.waitForEvents(1);
    first.socket.terminate();
    return { session: hello.session as string, after: { lsn: seen!.lsn, seq: seen!.seq } };
  }

  it("reproduction 'two tokens with numeric sub both got \"\" and one resumed the other's session': refused without a string sub", async () => {
    const gateway = await startGateway();
    const earlier = await sessionOf(gateway, await token({ sub: 1, sites: [5] }));
    const other = await client(gateway, await token({ sub: 2, sites: [5] }));
    const reply = await subscribe(other, ["device"], earlier);
    expect(reply).toMatchObject({ type: "subscribed", resumed: null });
    expect(other.controls.find((c) => c.type === "resync")?.reason).toMatch(/no string sub claim/);
    expect(gateway.stats.resumes).toBe(0);
  });

  it("keys sessions by (iss, sub): the same sub from another issuer cannot resume", async () => {
    const gateway = await startGateway();
    const earlier = await sessionOf(gateway, await token({ sub: "alice", iss: "https://tenant-a.example", sites: [5] }));
    const other = await client(gateway, await token({ sub: "alice", iss: "https://tenant-b.example", sites: [5] }));
    expect(await subscribe(other, ["device"], earlier)).toMatchObject({ type: "subscribed", resumed: null });
    expect(other.controls.find((c) => c.type === "resync")?.reason).toMatch(/another subject/);
    // The same (iss, sub) still resumes.
    const same = await client(gateway, await token({ sub: "alice", iss: "https://tenant-a.example", sites: [5] }));
    expect(await subscribe(same, ["device"], earlier)).toMatchObject({ type: "subscribed", resumed: 0 });
  });

  it("reproduction 'session ids are logged': never", async () => {
    const logLines: string[] = [];
    const gateway = await startGateway({}, logLines);
    const c = await client(gateway, await token({ sub: "carol", sites: [5] }));
    const hello = await c.control("hello");
    await subscribe(c, ["device"]);
    c.socket.close();
    await waitFor("the connection logged", () => (logLines.some((l) => l.includes("client connected")) ? true : undefined));
    expect(logLines.join("")).not.toContain(hello.session as string);
  });

  it("reproduction 'tokens without exp never expire': refused unless explicitly allowed", async () => {
    const strict = await startGateway();
    const jwt = await noExp({ sub: "dave", sites: [5] });
    const refusal = await new Promise<{ status: number; body: string }>((resolve) => {
      const ws = new WebSocket(`ws://127.0.0.1:${strict.port}/ws`, [SUBPROTOCOL, `bearer.${jwt}`]);
      ws.on("unexpected-response", (_req, res) => {
        let body = "";
        res.on("data", (d: Buffer) => (body += d.toString()));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
      });
      ws.on("open", () => resolve({ status: 101, body: "" }));
      ws.on("error", () => undefined);
    });
    expect(refusal).toMatchObject({ status: 401, body: expect.stringMatching(/token has no exp claim/) });
    const lenient = await startGateway({ verifier: createVerifier({ secret: SECRET, allowNoExp: true }) });
    const c = await client(lenient, await noExp({ sub: "dave", sites: [5] }));
    expect((await c.control("hello")).subject).toBe("dave");
  });
});
