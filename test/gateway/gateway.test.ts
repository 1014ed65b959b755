import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { WebSocket } from "ws";
import { SUBPROTOCOL } from "../../src/gateway/auth.js";
import { Gateway, type GatewayOptions } from "../../src/gateway/server.js";
import { DatabaseEvent_EventType } from "../../src/messages/index.js";
import { type CdcProcess, startCdc } from "../harness/cdc.js";
import { waitFor } from "../harness/ports.js";
import { connectClient, gatewayOptions, SECRET, subscribe, type TestClient, token } from "./support.js";
import { useClusterAndBroker } from "../harness/servers.js";

const [pg, broker] = useClusterAndBroker();
let cdc: CdcProcess;
const gateways: Gateway[] = [];
const clients: TestClient[] = [];

beforeAll(async () => {
  await pg.query("CREATE TABLE t_devices (id_device serial PRIMARY KEY, id_site int NOT NULL, device_name text NOT NULL, payload text)");
  cdc = await startCdc({ databaseUrl: pg.url, mqttUrl: broker.url, args: ["--tables", "t_devices", "--slot", "gw", "--publication", "gw"] });
}, 120_000);

afterEach(async () => {
  for (const c of clients.splice(0)) c.socket.terminate();
  for (const g of gateways.splice(0)) await g.stop();
});

afterAll(async () => {
  await cdc?.stop();
});

async function startGateway(overrides: Partial<GatewayOptions> = {}): Promise<Gateway> {
  const gateway = new Gateway(gatewayOptions(broker.url, overrides));
  gateways.push(gateway);
  await gateway.start();
  return gateway;
}

async function client(gateway: Gateway, claims: Record<string, unknown>): Promise<TestClient> {
  const c = await connectClient(gateway.port, await token(claims));
  clients.push(c);
  return c;
}

describe("tera-cdc gateway", () => {
  it("gives each client only the rows its token may see, deletes only of rows it was shown, and a keys-only delete when a row leaves its sites", async () => {
    const gateway = await startGateway();
    const site1 = await client(gateway, { sub: "alice", sites: [1] });
    const site2 = await client(gateway, { sub: "bob", sites: [2] });
    expect((await subscribe(site1, ["device"])).type).toBe("subscribed");
    expect((await subscribe(site2, ["device"])).type).toBe("subscribed");

    await pg.query("INSERT INTO t_devices (id_device, id_site, device_name) VALUES (101, 1, 'one-a'), (102, 1, 'one-b'), (201, 2, 'two-a')");
    await pg.query("UPDATE t_devices SET device_name = 'one-a renamed' WHERE id_device = 101");
    await pg.query("UPDATE t_devices SET id_site = 2, device_name = 'moved to two' WHERE id_device = 102");
    await pg.query("DELETE FROM t_devices WHERE id_device IN (101, 201)");

    await site1.waitForEvents(5);
    await site2.waitForEvents(3);
    // Wait for the gateway to have handled all 7 changes, then for the frames in flight.
    await waitFor("7 events at the gateway", () => gateway.stats.events >= 7);
    await new Promise((r) => setTimeout(r, 300));

    const summary = (c: TestClient) => c.events.map((e) => `${e.op}${e.leftView ? "(left-view)" : ""} ${JSON.stringify(Object.fromEntries(Object.entries(e.object).sort()))}`);
    expect(summary(site1)).toEqual([
      'create {"device_name":"one-a","id_device":101,"id_site":1,"payload":null}',
      'create {"device_name":"one-b","id_device":102,"id_site":1,"payload":null}',
      'update {"device_name":"one-a renamed","id_device":101,"id_site":1,"payload":null}',
      'delete(left-view) {"id_device":102}',
      'delete {"id_device":101}',
    ]);
    expect(summary(site2)).toEqual([
      'create {"device_name":"two-a","id_device":201,"id_site":2,"payload":null}',
      'update {"device_name":"moved to two","id_device":102,"id_site":2,"payload":null}',
      'delete {"id_device":201}',
    ]);
    // Never a row of the other site: every object either has the client's site or is a keys-only delete.
    for (const [c, site] of [[site1, 1], [site2, 2]] as const) {
      for (const e of c.events) {
        if (e.type === DatabaseEvent_EventType.DB_DELETE) expect(Object.keys(e.object)).toEqual(["id_device"]);
        else expect(e.object.id_site).toBe(site);
        expect(e.headerTopic).toBe("module.TeraServer.DatabaseModule.events.device");
      }
    }
    // Positions are the commit LSN and the index in the transaction: the three inserts share one LSN.
    expect(site1.events[0]!.lsn).toBe(site1.events[1]!.lsn);
    expect([site1.events[0]!.seq, site1.events[1]!.seq]).toEqual([0, 1]);
  });

  it("shares each event's frames among clients whose tokens the rules treat alike, and never delivers across claim sets", async () => {
    const gateway = await startGateway();
    // Four tokens, three audiences: the rules read only `sites`, so alice and erin (other sub, other
    // extra claims) share one; dave's [7, 8] is a set of its own.
    const alice = await client(gateway, { sub: "alice", sites: [7] });
    const erin = await client(gateway, { sub: "erin", sites: [7], role: "admin" });
    const frank = await client(gateway, { sub: "frank", sites: [8] });
    const dave = await client(gateway, { sub: "dave", sites: [7, 8] });
    for (const c of [alice, erin, frank, dave]) expect((await subscribe(c, ["device"])).type).toBe("subscribed");
    expect(gateway.stats.audiences).toBe(3);
    const framesBefore = gateway.stats.framesSent;

    const rows = Array.from({ length: 40 }, (_, i) => ({ id: 20000 + i, site: i % 2 === 0 ? 7 : 8 }));
    await pg.query(`INSERT INTO t_devices (id_device, id_site, device_name) VALUES ${rows.map((r) => `(${r.id}, ${r.site}, 'shared')`).join(", ")}`);
    await pg.query("UPDATE t_devices SET device_name = 'shared again' WHERE id_device BETWEEN 20000 AND 20039");
    // The oracle is the data written above, not the rules code: site 7 rows are the even ids.
    const of = (site: number | null) => rows.filter((r) => site === null || r.site === site).map((r) => r.id);
    await alice.waitForEvents(40);
    await erin.waitForEvents(40);
    await frank.waitForEvents(40);
    await dave.waitForEvents(80);
    await new Promise((r) => setTimeout(r, 300));
    const ids = (c: TestClient) => c.events.map((e) => e.object.id_device as number);
    for (const [c, site] of [[alice, 7], [erin, 7], [frank, 8]] as const) {
      expect(ids(c)).toEqual([...of(site), ...of(site)]);
      expect(c.events.every((e) => e.object.id_site === site)).toBe(true);
    }
    expect(ids(dave)).toEqual([...of(null), ...of(null)]);
    // 80 changes, each encoded once although 200 deliveries were made.
    expect(gateway.stats.events).toBe(80);
    expect(gateway.stats.eventsEncoded).toBe(80);
    expect(gateway.stats.framesSent - framesBefore).toBe(2 * (40 + 40 + 40 + 80));
  });

  it("says the current rows are only those changed since it started when it took no snapshot (issue 16, your own database without --rpc)", async () => {
    const gateway = await startGateway();
    await pg.query("INSERT INTO t_devices (id_device, id_site, device_name) VALUES (30001, 9, 'after the start')");
    await waitFor("the gateway to take the row", () => gateway.stats.events >= 1);
    const c = await client(gateway, { sub: "nina", sites: [9] });
    await subscribe(c, ["device"], { rows: true });
    expect(c.controls.find((f) => f.type === "rows")).toMatchObject({ complete: true, partial: expect.stringMatching(/changed since the gateway started: .*--rpc .*--snapshot-on-start/) });
    expect(c.events.map((e) => e.object.id_device)).toEqual([30001]);
  });

  it("refuses a connection without a valid token, and a model the token may not see", async () => {
    const gateway = await startGateway();
    const attempt = (protocols: string[], path = "/ws") =>
      new Promise<number>((resolve) => {
        const ws = new WebSocket(`ws://127.0.0.1:${gateway.port}${path}`, protocols);
        ws.on("unexpected-response", (_req, res) => resolve(res.statusCode ?? 0));
        ws.on("open", () => resolve(101));
        ws.on("error", () => undefined);
      });
    expect(await attempt([SUBPROTOCOL])).toBe(401);
    expect(await attempt([SUBPROTOCOL, `bearer.${await token({ sites: [1] }, "another-secret-that-is-long-enough-000000")}`])).toBe(401);
    expect(await attempt([SUBPROTOCOL, `bearer.${await token({ sites: [1] }, SECRET, "-1 min")}`])).toBe(401);
    expect(await attempt([], `/ws?token=${await token({ sites: [1] })}`)).toBe(101);
    const c = await client(gateway, { sites: [1] });
    const reply = await subscribe(c, ["user"]);
    expect(reply).toMatchObject({ type: "error", message: expect.stringMatching(/not allowed to see model user/) });
  });

  it("resumes a reconnecting client with exactly what it missed, and asks for a resync when it cannot", async () => {
    const gateway = await startGateway({ ringEvents: 50 });
    const first = await client(gateway, { sub: "carol", sites: [3] });
    const hello = await first.control("hello");
    await subscribe(first, ["device"]);
    await pg.query("INSERT INTO t_devices (id_device, id_site, device_name) VALUES (301, 3, 'seen')");
    const [seen] = await first.waitForEvents(1);
    first.socket.terminate();
    await first.closed();

    await pg.query("INSERT INTO t_devices (id_device, id_site, device_name) VALUES (302, 3, 'missed-1'), (399, 4, 'other site')");
    await pg.query("UPDATE t_devices SET device_name = 'missed-2' WHERE id_device = 301");
    await pg.query("DELETE FROM t_devices WHERE id_device = 301");
    await waitFor("the gateway to get the changes", () => gateway.stats.events >= 5);

    const second = await client(gateway, { sub: "carol", sites: [3] });
    const reply = await subscribe(second, ["device"], { after: { lsn: seen!.lsn, seq: seen!.seq }, session: hello.session });
    expect(reply).toMatchObject({ type: "subscribed", resumed: 3 });
    expect(second.events.map((e) => `${e.op} ${e.object.id_device}`)).toEqual(["create 302", "update 301", "delete 301"]);
    expect(second.controls.some((c) => c.type === "resync")).toBe(false);

    // A session nobody knows, and a position older than the ring holds, both get a clear resync.
    const stranger = await client(gateway, { sub: "carol", sites: [3] });
    await subscribe(stranger, ["device"], { after: { lsn: seen!.lsn, seq: seen!.seq }, session: "no-such-session" });
    expect(await stranger.control("resync")).toMatchObject({ reason: expect.stringMatching(/unknown session/) });
    // Rebuilding a client's rows from a position walks the ring and the rows: one connection may ask
    // for it once, not in a loop (each try is work the gateway does for whoever holds a token).
    const before = gateway.stats.positionResumes;
    const again = await subscribe(stranger, ["device"], { after: { lsn: seen!.lsn, seq: seen!.seq }, origin: { lsn: seen!.lsn, seq: seen!.seq } });
    expect(again).toMatchObject({ type: "error", message: expect.stringMatching(/resumes once/) });
    expect(gateway.stats.positionResumes).toBe(before);

    const secondHello = await second.control("hello");
    second.socket.terminate();
    await second.closed();
    await pg.query("INSERT INTO t_devices (id_device, id_site, device_name) SELECT 1000 + g, 3, 'bulk' FROM generate_series(1, 60) g");
    await waitFor("the bulk insert at the gateway", () => gateway.stats.events >= 65);
    const third = await client(gateway, { sub: "carol", sites: [3] });
    const last = second.events.at(-1)!;
    const thirdReply = await subscribe(third, ["device"], { after: { lsn: last.lsn, seq: last.seq }, session: secondHello.session });
    expect(thirdReply).toMatchObject({ type: "subscribed", resumed: null });
    expect(await third.control("resync")).toMatchObject({ reason: expect.stringMatching(/no longer held/) });
  });

  it("disconnects a client that stops reading instead of buffering for it, while a reading client gets everything", async () => {
    const gateway = await startGateway({ maxClientBufferBytes: 1024 * 1024 });
    const stalled = await client(gateway, { sub: "slow", sites: [5] });
    const reader = await client(gateway, { sub: "fast", sites: [5] });
    await subscribe(stalled, ["device"]);
    await subscribe(reader, ["device"]);
    // Stop reading from the socket: the kernel buffers fill, then the gateway's send buffer grows.
    (stalled.socket as unknown as { _socket: { pause(): void } })._socket.pause();
    await pg.query("INSERT INTO t_devices (id_device, id_site, device_name, payload) SELECT 5000 + g, 5, 'bulk', repeat(md5(g::text), 64) FROM generate_series(1, 4000) g");
    await reader.waitForEvents(4000, 120_000);
    await waitFor("the stalled client to be disconnected", () => gateway.stats.slowDisconnects >= 1, 30_000);
    // terminate() drops the client; it leaves the gateway's list at the socket's close event.
    await waitFor("the gateway to hold only the reading client", () => gateway.stats.clients === 1 || undefined, 10_000);
    expect(gateway.stats.slowDisconnects).toBe(1);
    expect(reader.events.every((e) => e.object.id_site === 5)).toBe(true);
  }, 150_000);

  it("holds a slow client's backlog and writes it back in order once it reads again", async () => {
    const gateway = await startGateway({ maxClientBufferBytes: 256 * 1024 * 1024 });
    const paused = await client(gateway, { sub: "pauser", sites: [17] });
    await subscribe(paused, ["device"]);
    const tcp = (paused.socket as unknown as { _socket: { pause(): void; resume(): void } })._socket;
    tcp.pause();
    await pg.query("INSERT INTO t_devices (id_device, id_site, device_name, payload) SELECT 40000 + g, 17, 'bulk', repeat(md5(g::text), 256) FROM generate_series(1, 4000) g");
    // Past the kernel's socket buffers the gateway holds frames for it.
    await waitFor("frames held for the paused client", () => gateway.stats.heldFrames > 500 || undefined, 60_000);
    tcp.resume();
    await paused.waitForEvents(4000, 120_000);
    expect(paused.events.map((e) => e.object.id_device)).toEqual(Array.from({ length: 4000 }, (_, i) => 40001 + i));
    await waitFor("nothing held any more", () => gateway.stats.heldFrames === 0 || undefined, 10_000);
    expect(gateway.stats.slowDisconnects).toBe(0);
  }, 180_000);

  it("disconnects the slow clients holding the most once the frames held over all clients pass --max-held-frames, never the one that reads", async () => {
    // Each stalled client alone stays far below its own limit (256 MB): only the total can stop them.
    const gateway = await startGateway({ maxClientBufferBytes: 256 * 1024 * 1024, maxHeldFrames: 2000 });
    const reader = await client(gateway, { sub: "fast", sites: [18] });
    await subscribe(reader, ["device"]);
    const stalled: TestClient[] = [];
    for (let i = 0; i < 3; i++) {
      const c = await client(gateway, { sub: `slow-${i}`, sites: [18] });
      await subscribe(c, ["device"]);
      (c.socket as unknown as { _socket: { pause(): void } })._socket.pause();
      stalled.push(c);
    }
    let peak = 0;
    const sampler = setInterval(() => (peak = Math.max(peak, gateway.stats.heldFrames)), 5);
    try {
      await pg.query("INSERT INTO t_devices (id_device, id_site, device_name, payload) SELECT 50000 + g, 18, 'bulk', repeat(md5(g::text), 256) FROM generate_series(1, 4000) g");
      await reader.waitForEvents(4000, 120_000);
      await waitFor("the stalled clients to be disconnected", () => gateway.stats.clients === 1 || undefined, 30_000);
    } finally {
      clearInterval(sampler);
    }
    expect(gateway.stats.slowDisconnects).toBe(3);
    expect(peak).toBeLessThanOrEqual(2000);
    expect(gateway.stats.heldFrames).toBe(0);
    expect(reader.events.map((e) => e.object.id_device)).toEqual(Array.from({ length: 4000 }, (_, i) => 50001 + i));
  }, 180_000);

  it("drops a client that does not answer pings", async () => {
    const gateway = await startGateway({ pingIntervalMs: 300 });
    const dead = await client(gateway, { sub: "ghost", sites: [6] });
    const alive = await client(gateway, { sub: "here", sites: [6] });
    (dead.socket as unknown as { _socket: { pause(): void } })._socket.pause();
    await waitFor("the dead client to be dropped", () => gateway.stats.deadDisconnects >= 1, 30_000);
    await new Promise((r) => setTimeout(r, 1000));
    expect(gateway.stats.deadDisconnects).toBe(1);
    expect(alive.socket.readyState).toBe(WebSocket.OPEN);
    expect(gateway.stats.clients).toBe(1);
  });
});
