import { expect, it } from "vitest";
import { type Change, subscribe } from "../../src/client/index.js";
import { runCli, startCdc } from "../harness/cdc.js";
import { waitFor } from "../harness/ports.js";
import { exited } from "../harness/processes.js";
import { useClusterAndAedes } from "../harness/servers.js";

/** The embedded broker of `npm start` is aedes, MQTT 3.1.1 only: the client must still work there. */
const [pg, aedes] = useClusterAndAedes();

it("receives typed changes from an MQTT 3.1.1 broker, without positions, truncate included", async () => {
  await pg.query("CREATE TABLE t_devices (id_device int PRIMARY KEY, device_name text)");
  const received: Change[] = [];
  const subscription = await subscribe({ mqttUrl: aedes.url, models: ["device"] }, (change) => {
    received.push(change);
  });
  const cdc = await startCdc({ databaseUrl: pg.url, mqttUrl: aedes.url, args: ["--tables", "t_devices"] });
  await pg.query("INSERT INTO t_devices VALUES (1, 'Kinect'), (2, 'Tablet')");
  await pg.query("UPDATE t_devices SET device_name = 'Kinect 2' WHERE id_device = 1");
  await pg.query("DELETE FROM t_devices WHERE id_device = 2");
  await pg.query("TRUNCATE t_devices");
  await waitFor("five changes", () => received.length >= 5 || undefined, 30_000);
  expect(received.map((c) => [c.op, c.object])).toEqual([
    ["create", { device_name: "Kinect", id_device: 1 }],
    ["create", { device_name: "Tablet", id_device: 2 }],
    ["update", { device_name: "Kinect 2", id_device: 1 }],
    ["delete", { id_device: 2 }],
    ["truncate", {}],
  ]);
  expect(received.every((c) => c.lsn === "" && c.model === "device")).toBe(true);
  await subscription.close();
  expect(await cdc.stop()).toBe(0);
});

it("refuses to record an audit trail through an MQTT 3.1.1 broker, in one line", async () => {
  const { child, output } = runCli(["audit", "--mqtt-url", aedes.url, "--database-url", pg.url]);
  expect(await exited(child)).toBe(1);
  expect(output().stderr.trim().split("\n").at(-1)).toMatch(/^tera-cdc audit: the broker at mqtt:\/\/127\.0\.0\.1:\d+ speaks only MQTT 3\.1\.1: the audit trail needs MQTT 5/);
});
