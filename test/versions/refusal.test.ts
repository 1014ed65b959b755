import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Broker, startBroker } from "../harness/broker.js";
import { runCli } from "../harness/cdc.js";
import { exited } from "../harness/processes.js";
import { type PostgresServer, startPostgres } from "../harness/postgres.js";

let pg13: PostgresServer;
let broker: Broker;

beforeAll(async () => {
  [pg13, broker] = await Promise.all([startPostgres({ version: 13 }), startBroker()]);
  await pg13.query("CREATE TABLE old_server (id int PRIMARY KEY, name text)");
});

afterAll(async () => {
  await Promise.all([pg13?.close(), broker?.close()]);
});

describe("PostgreSQL 13 (pgoutput has no messages option)", () => {
  it("run refuses at start: exit 2, one last line naming the version and the minimum, no slot left behind", async () => {
    expect((await pg13.query("SHOW server_version_num")).rows[0].server_version_num).toMatch(/^13/);
    const { child, output } = runCli(["run", "--database-url", pg13.url, "--mqtt-url", broker.url, "--tables", "old_server"]);
    const code = await exited(child, 60_000);
    const lines = output().stderr.trim().split("\n");
    expect(code, output().stderr).toBe(2);
    expect(lines.at(-1)).toMatch(/^tera-cdc run: PostgreSQL 13\.\d+ is not supported: tera-cdc needs PostgreSQL 14 or later \(pgoutput's messages option\); upgrade the server$/);
    expect((await pg13.query("SELECT count(*)::int AS n FROM pg_replication_slots")).rows[0].n).toBe(0);
  });
});
