// Issue 14 item 3 for the client library: given the signing key, `subscribe` hands over only what
// `run` signed. Forgeries (unsigned, signed with another key, a signed message with a property
// changed on the way) are dropped and counted; the real changes around them arrive.
import { readFileSync } from "node:fs";
import mqtt from "mqtt";
import { afterAll, beforeAll, expect, it } from "vitest";
import { type Change, subscribe } from "../../src/client/index.js";
import { type CdcProcess, startCdc } from "../harness/cdc.js";
import { waitFor } from "../harness/ports.js";
import { positionProperties, publishForgeries, signingKeyFile } from "./support/forge.js";
import { useClusterAndBroker } from "../harness/servers.js";

const [pg, broker] = useClusterAndBroker();
let cdc: CdcProcess;
const keyFile = signingKeyFile();

beforeAll(async () => {
  await pg.query("CREATE TABLE t_projects (id_project int PRIMARY KEY, project_name text NOT NULL)");
  cdc = await startCdc({ databaseUrl: pg.url, mqttUrl: broker.url, args: ["--tables", "t_projects"], env: { TERA_CDC_SIGNING_KEY_FILE: keyFile } });
  await cdc.waitForStreaming();
}, 120_000);

afterAll(async () => {
  await cdc?.stop();
});

it("with signingKey, drops unsigned, wrongly signed and altered messages, counts them, and delivers the real changes", async () => {
  const key = readFileSync(keyFile).subarray(0, 64);
  const received: Change[] = [];
  const errors: string[] = [];
  const subscription = await subscribe({ mqttUrl: broker.url, models: ["project"], signingKey: key, onError: (error) => errors.push(error.message) }, (change) => {
    received.push(change);
  });
  // Relay: whatever run publishes, re-published with its project_name changed but its sig kept.
  const relay = await mqtt.connectAsync(broker.url, { protocolVersion: 5 });
  await relay.subscribeAsync("module/TeraServer/DatabaseModule/events/project", { qos: 1 });
  let altered = 0;
  relay.on("message", (topic, payload, packet) => {
    if (altered > 0 || !payload.toString("latin1").includes("first")) return;
    altered++;
    const props = packet.properties?.userProperties as Record<string, string>;
    void relay.publishAsync(topic, Buffer.from(payload.toString("latin1").replace("first", "FORGE"), "latin1"), { qos: 1, properties: { userProperties: { ...props, seq: "7" } } });
  });
  try {
    const [{ lsn }] = (await pg.query("SELECT pg_current_wal_lsn()::text AS lsn")).rows as [{ lsn: string }];
    await publishForgeries(broker.url, [
      { model: "project", type: 1, object: { id_project: 66, project_name: "unsigned" }, properties: positionProperties(lsn, 0, "public.t_projects", undefined, "create") },
      { model: "project", type: 1, object: { id_project: 67, project_name: "other key" }, properties: { ...positionProperties(lsn, 1, "public.t_projects", undefined, "create"), sig: "ab".repeat(32) } },
    ]);
    await pg.query("INSERT INTO t_projects VALUES (1, 'first')");
    await waitFor("the altered copy dropped", () => (subscription.stats.badSignatures === 2 ? true : undefined), 30_000);
    await pg.query("INSERT INTO t_projects VALUES (2, 'second')");
    await waitFor("both real changes", () => (received.length >= 2 ? true : undefined), 30_000);
    expect(received.map((c) => c.object.project_name)).toEqual(["first", "second"]);
    expect(subscription.stats).toMatchObject({ unsigned: 1, badSignatures: 2, delivered: 2 });
    expect(errors.filter((e) => /not signed/.test(e))).toHaveLength(1);
    expect(errors.filter((e) => /sig does not match the message/.test(e))).toHaveLength(2);
  } finally {
    await relay.endAsync();
    await subscription.close();
  }
});
