import { expect, it } from "vitest";
import { startCdc } from "../harness/cdc.js";
import { startConsumer } from "../harness/consumer.js";
import { useClusterAndAedes } from "../harness/servers.js";

/** aedes speaks only MQTT 3.1.1: tera-cdc must fall back and still deliver the same payloads. */
const [pg, aedes] = useClusterAndAedes();

it("falls back to MQTT 3.1.1 and publishes the same TeraEvents without user properties", async () => {
  await pg.query("CREATE TABLE t_users (id_user int PRIMARY KEY, user_name text)");
  const consumer = await startConsumer(aedes.url, "module/TeraServer/DatabaseModule/events/#", { protocolVersion: 4 });
  const cdc = await startCdc({ databaseUrl: pg.url, mqttUrl: aedes.url, args: ["--tables", "t_users"] });
  expect(cdc.logs()).toMatch(/broker does not speak MQTT 5; using MQTT 3.1.1/);
  await pg.query("INSERT INTO t_users VALUES (1, 'Ada'), (2, 'Grace')");
  await pg.query("DELETE FROM t_users WHERE id_user = 1");
  const events = await consumer.waitForCount(3);
  expect(events.map((e) => [e.type, e.model, e.objectText])).toEqual([
    [1, "user", '{"id_user":1,"user_name":"Ada"}'],
    [1, "user", '{"id_user":2,"user_name":"Grace"}'],
    [3, "user", '{"id_user":1}'],
  ]);
  expect(events[0]!.properties).toEqual({});
  expect(events[0]!.headerTopic).toBe("module.TeraServer.DatabaseModule.events.user");
  expect(await cdc.stop()).toBe(0);
  await consumer.close();
});
