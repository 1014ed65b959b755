import { afterAll, beforeAll, expect, it } from "vitest";
import { Gateway } from "../../src/gateway/server.js";
import { type Broker, startBroker } from "../harness/broker.js";
import { type CdcProcess, startCdc } from "../harness/cdc.js";
import { waitFor } from "../harness/ports.js";
import { type PostgresServer, startPostgres } from "../harness/postgres.js";
import { type ClientEvent, connectClient, gatewayOptions, subscribe, type TestClient, token } from "./support.js";

/**
 * Issue 18 point 6: gateways behind a load balancer. Two gateway instances take the same stream;
 * a client is moved from one to the other and back while changes flow, each time with only its
 * last position and its origin (the instance it moves to never saw its session). The oracle is
 * PostgreSQL: the rows the client ends with are the table's rows its token may see. And the moved
 * client's changes are exactly those of a client that stayed connected: none lost, none twice.
 */
let pg: PostgresServer;
let broker: Broker;
let cdc: CdcProcess;
const gateways: Gateway[] = [];
const clients: TestClient[] = [];

beforeAll(async () => {
  [pg, broker] = await Promise.all([startPostgres(), startBroker()]);
  await pg.query("CREATE TABLE t_devices (id_device int PRIMARY KEY, id_site int NOT NULL, device_name text NOT NULL)");
  cdc = await startCdc({ databaseUrl: pg.url, mqttUrl: broker.url, args: ["--tables", "t_devices", "--slot", "fleet", "--publication", "fleet"] });
}, 120_000);

afterAll(async () => {
  for (const c of clients) c.socket.terminate();
  for (const g of gateways) await g.stop();
  await cdc?.stop();
  await Promise.all([pg?.close(), broker?.close()]);
});

async function startGateway(): Promise<Gateway> {
  const gateway = new Gateway(gatewayOptions(broker.url, { ringEvents: 100_000 }));
  gateways.push(gateway);
  await gateway.start();
  return gateway;
}

async function connect(gateway: Gateway): Promise<TestClient> {
  const c = await connectClient(gateway.port, await token({ sub: "mover", sites: [1] }));
  clients.push(c);
  return c;
}

type Row = { id_site: unknown; device_name: unknown };

/** What a client shows: its initial rows, then each live change applied in order. */
function apply(rows: Map<number, Row>, events: readonly ClientEvent[]): void {
  for (const e of events) {
    const id = e.object.id_device as number;
    if (e.op === "delete") rows.delete(id);
    else rows.set(id, { id_site: e.object.id_site, device_name: e.object.device_name });
  }
}

const live = (c: TestClient) => c.events.filter((e) => !e.initial);
const position = (e: ClientEvent) => ({ lsn: e.lsn, seq: e.seq });
const label = (e: ClientEvent) => `${e.lsn}/${e.seq} ${e.op}${e.leftView ? "(left)" : ""} ${e.object.id_device}`;

it("moves a client between two gateway instances while changes flow: nothing lost, nothing twice, the rows PostgreSQL has", async () => {
  const [a, b] = await Promise.all([startGateway(), startGateway()]);
  await pg.query("INSERT INTO t_devices SELECT g, 1 + g % 2, 'start ' || g FROM generate_series(1, 40) g");
  await waitFor("both instances to take the first rows", () => a.stats.events >= 40 && b.stats.events >= 40);

  const stayer = await connect(a);
  await subscribe(stayer, ["device"], { rows: true });
  const mover = await connect(a);
  const helloA = await mover.control("hello");
  await subscribe(mover, ["device"], { rows: true });
  const rowsFrame = mover.controls.find((c) => c.type === "rows")!;
  expect(rowsFrame.origin).toBeTruthy();
  const origin = rowsFrame.origin as { lsn: string; seq: number };
  const shown = new Map<number, Row>();
  apply(shown, mover.events.filter((e) => e.initial));
  expect(shown.size).toBe(20);

  // Changes flow all along: inserts on both sites, renames, moves between sites, deletes.
  let stop = false;
  const writer = (async () => {
    for (let i = 0; !stop && i < 2000; i++) {
      const id = 1 + (i % 60);
      const statements = [
        `INSERT INTO t_devices VALUES (${id}, ${1 + (i % 2)}, 'new ${i}') ON CONFLICT (id_device) DO UPDATE SET device_name = 'upsert ${i}'`,
        `UPDATE t_devices SET device_name = 'renamed ${i}' WHERE id_device = ${id}`,
        `UPDATE t_devices SET id_site = 3 - id_site WHERE id_device = ${id}`,
        `DELETE FROM t_devices WHERE id_device = ${id}`,
      ];
      await pg.query(statements[(i * 7) % 4]!);
      await new Promise((r) => setTimeout(r, 5));
    }
  })();

  // Each hop: drop the connection, let changes pass meanwhile, and resume on the other instance
  // with the session of the first one (unknown there), the last position seen and the origin.
  let current = mover;
  let session = helloA.session as string;
  const received: ClientEvent[] = [];
  const hops: number[] = [];
  for (const target of [b, a, b]) {
    await waitFor("changes on the current connection", () => (live(current).length >= 30 ? true : undefined), 60_000);
    current.socket.terminate();
    await current.closed();
    received.push(...live(current));
    await waitFor("changes the client misses while away", () => (live(stayer).length >= received.length + 5 ? true : undefined), 60_000);
    const next = await connect(target);
    const hello = await next.control("hello");
    const reply = await subscribe(next, ["device"], { after: position(received.at(-1)!), origin, session });
    expect(reply).toMatchObject({ type: "subscribed" });
    expect(next.controls.find((c) => c.type === "resync")).toBeUndefined();
    hops.push(reply.resumed as number);
    session = hello.session as string;
    current = next;
  }
  stop = true;
  await writer;
  // Settled: the writer has stopped, and for a second nothing new reached either instance or client.
  let settled = "";
  const moved = await waitFor("the instances and both clients to settle", () => {
    const all = [...received, ...live(current)];
    const mark = `${a.stats.events} ${b.stats.events} ${all.length} ${live(stayer).length}`;
    if (mark === settled && a.stats.events === b.stats.events) return all;
    settled = mark;
    return undefined;
  }, 60_000, 1000);
  const all = [...received, ...live(current)];

  // None lost, none twice: exactly the changes of the client that stayed, in the same order.
  expect(all.map(label)).toEqual(live(stayer).map(label));
  expect(moved.length).toBeGreaterThanOrEqual(90);
  expect(b.stats.positionResumes + a.stats.positionResumes).toBe(3);
  // Changes were missed and replayed (an instance behind the client's position replays none at
  // once and sends the rest as they come; either way the sequence above is whole).
  expect(hops.reduce((x, y) => x + y, 0)).toBeGreaterThan(0);

  // The rows the client shows are what PostgreSQL holds for its site.
  apply(shown, all);
  const { rows } = (await pg.query("SELECT id_device, id_site, device_name FROM t_devices WHERE id_site = 1 ORDER BY id_device")) as { rows: { id_device: number; id_site: number; device_name: string }[] };
  const expected = new Map(rows.map((r) => [r.id_device, { id_site: r.id_site, device_name: r.device_name }]));
  expect(new Map([...shown].sort((x, y) => x[0] - y[0]))).toEqual(expected);
}, 240_000);
