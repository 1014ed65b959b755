import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Gateway } from "../../src/gateway/server.js";
import { type CdcProcess, startCdc } from "../harness/cdc.js";
import { waitFor } from "../harness/ports.js";
import { useClusterAndBroker } from "../harness/servers.js";
import { connectClient, gatewayOptions, subscribe, type TestClient, token } from "./support.js";

// This file's own broker: the test stops and starts it.
const [pg, broker] = useClusterAndBroker();
let cdc: CdcProcess;
let gateway: Gateway;
const clients: TestClient[] = [];

beforeAll(async () => {
  await pg.query("CREATE TABLE t_devices (id_device int PRIMARY KEY, id_site int NOT NULL, device_name text NOT NULL)");
  cdc = await startCdc({ databaseUrl: pg.url, mqttUrl: broker.url, args: ["--tables", "t_devices", "--slot", "gap", "--publication", "gap"] });
  gateway = new Gateway(gatewayOptions(broker.url));
  await gateway.start();
}, 120_000);

afterAll(async () => {
  for (const c of clients) c.socket.terminate();
  await gateway?.stop();
  await cdc?.stop();
});

async function client(): Promise<TestClient> {
  const c = await connectClient(gateway.port, await token({ sub: "alice", sites: [1] }));
  clients.push(c);
  return c;
}

const healthStatus = async () => (await fetch(`http://127.0.0.1:${gateway.port}/healthz`)).status;

describe("the gateway's broker connection lost and restored", () => {
  it("tells every client to resync, refuses a resume from before the gap, and forwards later changes once, without repeats", async () => {
    const watcher = await client();
    expect((await subscribe(watcher, ["device"])).type).toBe("subscribed");
    const hello = watcher.controls.find((f) => f.type === "hello")!;
    await pg.query("INSERT INTO t_devices VALUES (1, 1, 'before the gap')");
    const [before] = await watcher.waitForEvents(1);

    await broker.stop();
    await waitFor("the gateway to see the broker gone", () => !gateway.stats.mqttConnected || undefined, 30_000);
    expect(await healthStatus()).toBe(503);
    await broker.start();

    // Whatever was published while it was away never reaches its clean session: it cannot vouch for what clients show.
    const resync = await watcher.control("resync", 60_000);
    expect(resync.reason).toBe("the gateway lost its broker connection and may have missed events");
    await waitFor("the gateway to be back on the broker", () => gateway.stats.mqttConnected || undefined, 30_000);
    expect(await healthStatus()).toBe(200);

    // run reconnects too and may publish again what the broker had not passed on: the gateway drops repeats.
    await pg.query("INSERT INTO t_devices VALUES (2, 1, 'after the gap')");
    await watcher.waitForEvents(2, 60_000);
    expect(watcher.events.map((e) => `${e.op} ${e.object.id_device}`)).toEqual(["create 1", "create 2"]);

    // The ring was emptied at the gap: a position from before it cannot be resumed from, even with the session.
    const returning = await client();
    await subscribe(returning, ["device"], { after: { lsn: before!.lsn, seq: before!.seq }, session: hello.session });
    const refused = await returning.control("resync");
    expect(refused.reason).toBe(`position ${before!.lsn}/${before!.seq} is no longer held by the gateway`);
    expect(returning.events).toEqual([]);
  });
});
