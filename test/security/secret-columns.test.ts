import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { startCdc } from "../harness/cdc.js";
import { startConsumer } from "../harness/consumer.js";
import { useClusterAndBroker } from "../harness/servers.js";

/**
 * Issue 4 item 14: a secret-looking column (`user_password`) never reaches the broker, whatever
 * the operation: INSERT, UPDATE (also of the secret itself) and DELETE under REPLICA IDENTITY FULL,
 * where PostgreSQL does put the whole old row, secret included, into the WAL.
 */
describe("secret-looking columns", () => {
  const [pg, broker] = useClusterAndBroker();

  it("withholds user_password on insert, update and delete with REPLICA IDENTITY FULL", async () => {
    const secrets = ["hunter2-insert-SECRET", "correct-horse-UPDATE-SECRET", "third-SECRET-before-delete"];
    await pg.query(`CREATE TABLE t_users (id_user serial PRIMARY KEY, user_uuid uuid NOT NULL DEFAULT gen_random_uuid(),
      user_name text NOT NULL, user_password text NOT NULL, api_token text)`);
    await pg.query("ALTER TABLE t_users REPLICA IDENTITY FULL");
    const consumer = await startConsumer(broker.url);
    const cdc = await startCdc({ databaseUrl: pg.url, mqttUrl: broker.url, args: ["--tables", "t_users", "--slot", "secrets", "--publication", "secrets"] });
    try {
      await pg.query("INSERT INTO t_users (user_name, user_password, api_token) VALUES ('ada', $1, 'tok-SECRET-1')", [secrets[0]]);
      await pg.query("UPDATE t_users SET user_password = $1 WHERE user_name = 'ada'", [secrets[1]]);
      await pg.query("UPDATE t_users SET user_name = 'ada l.', user_password = $1 WHERE id_user = 1", [secrets[2]]);
      await pg.query("DELETE FROM t_users WHERE id_user = 1");
      const events = await consumer.waitForCount(4);
      expect(events.map((e) => e.properties.op)).toEqual(["create", "update", "update", "delete"]);
      expect(events[0]!.object).toMatchObject({ id_user: 1, user_name: "ada" });
      expect(events[2]!.object).toMatchObject({ id_user: 1, user_name: "ada l." });
      expect(events[3]!.object).toMatchObject({ id_user: 1 });
      for (const event of events) {
        expect(Object.keys(event.object)).not.toContain("user_password");
        expect(Object.keys(event.object)).not.toContain("api_token");
        expect(Object.values(event.properties).join(" ")).not.toMatch(/password|SECRET/);
      }
      // The raw bytes on the wire: neither the column's name nor any of its values.
      const wire = Buffer.concat(consumer.payloads).toString("latin1");
      expect(consumer.payloads.length).toBe(4);
      expect(wire).not.toContain("user_password");
      expect(wire).not.toContain("api_token");
      for (const secret of [...secrets, "tok-SECRET-1"]) expect(wire).not.toContain(secret);
      // ...and the logs name the withheld columns, never their values.
      expect(cdc.logs()).toMatch(/withheld.*user_password/);
      for (const secret of secrets) expect(cdc.logs()).not.toContain(secret);
    } finally {
      await cdc.stop();
      await consumer.close();
    }
  });

  it("publishes a secret-looking column only when the table's columns setting names it", async () => {
    await pg.query("CREATE TABLE t_keys (id_key int PRIMARY KEY, key_name text, key_secret text)");
    const file = join(mkdtempSync(join(tmpdir(), "tera-cdc-secret-")), "config.yaml");
    writeFileSync(file, "tables:\n  t_keys:\n    columns: [id_key, key_name, key_secret]\n");
    const consumer = await startConsumer(broker.url);
    const cdc = await startCdc({ databaseUrl: pg.url, mqttUrl: broker.url, args: ["--config", file, "--slot", "optin", "--publication", "optin"] });
    try {
      await pg.query("INSERT INTO t_keys VALUES (1, 'k', 'opted-in-value')");
      const [event] = await consumer.waitForCount(1);
      expect(event!.object).toEqual({ id_key: 1, key_name: "k", key_secret: "opted-in-value" });
    } finally {
      await cdc.stop();
      await consumer.close();
    }
  });
});
