import { describe, expect, it } from "vitest";
import { startCdc } from "../harness/cdc.js";
import { startConsumer } from "../harness/consumer.js";
import { useClusterAndBroker } from "../harness/servers.js";

/**
 * Issue 4 item 10: schema changes while tera-cdc streams. Each event carries the columns the
 * table had when the change was made: pgoutput sends the new column list (a Relation message)
 * before the first change after ALTER TABLE, and tera-cdc re-plans the table from it.
 * A table dropped and re-created under the same name is a new table to PostgreSQL: DROP TABLE
 * takes it out of the publication, so its changes are not streamed until it is added again
 * (by a DBA, or by tera-cdc itself at its next start, since it is in --tables).
 */
describe("schema changes mid-stream", () => {
  const [pg, broker] = useClusterAndBroker();

  it("ADD, DROP, RENAME COLUMN, ALTER TYPE and DROP/CREATE TABLE: every event has the columns of its time", async () => {
    await pg.query("CREATE TABLE t_items (id_item int PRIMARY KEY, item_name text)");
    const consumer = await startConsumer(broker.url);
    const args = ["--tables", "t_items", "--slot", "schema", "--publication", "schema"];
    let cdc = await startCdc({ databaseUrl: pg.url, mqttUrl: broker.url, args });
    try {
      const expected: Record<string, unknown>[] = [];
      const step = async (sql: string[], objects: Record<string, unknown>[]) => {
        for (const statement of sql) await pg.query(statement);
        expected.push(...objects);
        const events = await consumer.waitForCount(expected.length);
        expect(events.map((e) => e.object)).toEqual(expected);
      };
      await step(["INSERT INTO t_items VALUES (1, 'one')"], [{ id_item: 1, item_name: "one" }]);
      await step(
        ["ALTER TABLE t_items ADD COLUMN item_size int", "INSERT INTO t_items VALUES (2, 'two', 20)", "UPDATE t_items SET item_name = 'uno' WHERE id_item = 1"],
        [{ id_item: 2, item_name: "two", item_size: 20 }, { id_item: 1, item_name: "uno", item_size: null }],
      );
      await step(
        ["ALTER TABLE t_items DROP COLUMN item_name", "INSERT INTO t_items VALUES (3, 30)", "UPDATE t_items SET item_size = 21 WHERE id_item = 2"],
        [{ id_item: 3, item_size: 30 }, { id_item: 2, item_size: 21 }],
      );
      await step(
        ["ALTER TABLE t_items RENAME COLUMN item_size TO item_weight", "INSERT INTO t_items VALUES (4, 40)"],
        [{ id_item: 4, item_weight: 40 }],
      );
      // int -> numeric: numbers become the numeric rule's exact strings; int -> text: strings.
      await step(
        ["ALTER TABLE t_items ALTER COLUMN item_weight TYPE numeric(10,2)", "INSERT INTO t_items VALUES (5, 50.5)", "UPDATE t_items SET item_weight = item_weight + 1 WHERE id_item = 4"],
        [{ id_item: 5, item_weight: "50.50" }, { id_item: 4, item_weight: "41.00" }],
      );
      await step(
        ["ALTER TABLE t_items ALTER COLUMN item_weight TYPE text USING item_weight::text || ' kg'", "INSERT INTO t_items VALUES (6, '60 kg')"],
        [{ id_item: 6, item_weight: "60 kg" }],
      );
      await step(["DELETE FROM t_items WHERE id_item = 6"], [{ id_item: 6 }]);
      expect(cdc.logs()).toMatch(/table columns changed/);

      // Dropped and re-created: out of the publication until added again.
      await pg.query("DROP TABLE t_items");
      await pg.query("CREATE TABLE t_items (id_item int PRIMARY KEY, item_label text, item_uuid uuid)");
      await pg.query("INSERT INTO t_items VALUES (100, 'not published yet', NULL)");
      const inPublication = await pg.query("SELECT count(*)::int AS n FROM pg_publication_tables WHERE pubname = 'schema'");
      expect(inPublication.rows[0].n).toBe(0);
      await pg.query("ALTER PUBLICATION schema ADD TABLE t_items");
      await step(["INSERT INTO t_items VALUES (101, 'new table', NULL)"], [{ id_item: 101, item_label: "new table", item_uuid: null }]);
      expect(consumer.events.some((e) => e.object.id_item === 100)).toBe(false);
      expect((await cdc.health()).status).toBe(200);

      // Re-created again, and tera-cdc restarted: it puts the table in the publication itself.
      expect(await cdc.stop()).toBe(0);
      await pg.query("DROP TABLE t_items");
      await pg.query("CREATE TABLE t_items (id_item int PRIMARY KEY, item_colour text)");
      cdc = await startCdc({ databaseUrl: pg.url, mqttUrl: broker.url, args });
      expect(cdc.logs()).toMatch(/ALTER PUBLICATION \W*schema\W* ADD TABLE \W*public\W*\.\W*t_items/);
      await step(["INSERT INTO t_items VALUES (200, 'blue')"], [{ id_item: 200, item_colour: "blue" }]);
      const topics = new Set(consumer.events.map((e) => e.topic));
      expect([...topics]).toEqual(["module/TeraServer/DatabaseModule/events/item"]);
    } finally {
      await cdc.stop();
      await consumer.close();
    }
  }, 120_000);
});
