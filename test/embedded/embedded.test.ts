import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli } from "../harness/cdc.js";
import { startConsumer } from "../harness/consumer.js";
import { waitFor } from "../harness/ports.js";
import { exited } from "../harness/processes.js";

/**
 * `npm start` with nothing configured: tera-cdc starts an embedded PostgreSQL (sample OpenTera
 * database) and an embedded MQTT broker and prints their URLs. The data folder is a temporary
 * one (--data-dir) so the project's own .tera-cdc/ is left alone.
 */
const dataDir = mkdtempSync(join(tmpdir(), "tera-cdc-embedded-"));
// mkdtemp makes it 0700; as root, PostgreSQL runs as the postgres user, who must be able to enter it.
chmodSync(dataDir, 0o755);
/** Empty values count as unset: the embedded default must not pick up a developer's URLs. */
const NO_URLS = { TERA_CDC_DATABASE_URL: "", TERA_CDC_MQTT_URL: "", TERA_CDC_TABLES: "", TERA_CDC_PRESET: "" };
const held: Server[] = [];
/** initdb on a busy 2-core machine takes seconds; each test waits up to this per step. */
const STEP_MS = 90_000;
const TEST_MS = 4 * STEP_MS;

/** Takes the standard port if nothing has it, so the test always sees the "port taken" path. */
async function holdIfFree(port: number): Promise<void> {
  const server = createServer();
  await new Promise<void>((resolve) => {
    server.once("error", () => resolve());
    server.listen({ port, host: "127.0.0.1", exclusive: true }, () => {
      held.push(server);
      resolve();
    });
  });
}

beforeAll(async () => {
  await holdIfFree(5432);
  await holdIfFree(1883);
});

afterAll(async () => {
  for (const server of held) await new Promise((resolve) => server.close(resolve));
  rmSync(dataDir, { recursive: true, force: true });
});

function start() {
  const cli = runCli(["run", "--data-dir", dataDir], NO_URLS);
  // An early exit fails at once (waitFor alone would retry until its deadline).
  const died = exited(cli.child, TEST_MS).then((code) => {
    throw new Error(`tera-cdc exited with ${code}: ${cli.output().stderr.slice(-2000)}`);
  });
  died.catch(() => {});
  const printed = async () =>
    Promise.race([died, waitFor(
      "the ready-to-paste URLs",
      () => {
        const { stdout } = cli.output();
        const database = /psql (postgres:\/\/\S+)\n/.exec(stdout)?.[1];
        const broker = /npx tera-cdc tail --mqtt-url (mqtt:\/\/\S+)/.exec(stdout)?.[1];
        return database && broker ? { database, broker, stdout } : undefined;
      },
      STEP_MS,
      100,
    )]);
  return { ...cli, printed };
}

async function query(url: string, sql: string): Promise<pg.QueryResult> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await client.query(sql);
  } finally {
    await client.end();
  }
}

describe("tera-cdc run with no database or broker URL (npm start)", () => {
  let firstUrls: { database: string; broker: string };

  it("starts embedded PostgreSQL and broker on free ports, prints their URLs, and streams a change made through them", async () => {
    const cli = start();
    try {
      const urls = await cli.printed();
      firstUrls = urls;
      expect(new URL(urls.database).port).not.toBe("5432");
      expect(new URL(urls.broker).port).not.toBe("1883");
      expect(new URL(urls.database).pathname).toBe("/opentera");
      // The sample schema and data were loaded on this first start.
      expect((await query(urls.database, "SELECT count(*)::int AS n FROM t_devices")).rows[0].n).toBeGreaterThan(0);
      expect((await query(urls.database, "SHOW wal_level")).rows[0].wal_level).toBe("logical");

      // aedes speaks MQTT 3.1.1 only.
      const consumer = await startConsumer(urls.broker, undefined, { protocolVersion: 4 });
      try {
        await query(urls.database, "INSERT INTO t_sites (site_name, site_2fa_required) VALUES ('Added through the printed URL', false)");
        const [event] = await consumer.waitForCount(1, 60_000);
        expect(event!.model).toBe("site");
        expect(event!.topic).toBe("module/TeraServer/DatabaseModule/events/site");
        expect(event!.object).toMatchObject({ site_name: "Added through the printed URL", site_2fa_required: false });
      } finally {
        await consumer.close();
      }

      cli.child.kill("SIGINT");
      expect(await exited(cli.child, 60_000)).toBe(0);
      // The embedded PostgreSQL stopped with it.
      expect(existsSync(join(dataDir, "postgres", "postmaster.pid"))).toBe(false);
      await expect(query(urls.database, "SELECT 1")).rejects.toThrow();
    } finally {
      if (cli.child.exitCode === null) cli.child.kill("SIGKILL");
    }
  }, TEST_MS);

  it("starts again on the same ports with the data kept, without loading the sample again", async () => {
    const cli = start();
    try {
      const urls = await cli.printed();
      expect(urls.database).toBe(firstUrls.database);
      expect(urls.broker).toBe(firstUrls.broker);
      const rows = await query(urls.database, "SELECT count(*)::int AS n FROM t_sites WHERE site_name = 'Added through the printed URL'");
      expect(rows.rows[0].n).toBe(1);
      expect(cli.output().stderr).not.toMatch(/loaded into the embedded database/);
      // Killed without a clean stop: the embedded PostgreSQL is left running...
      cli.child.kill("SIGKILL");
      await exited(cli.child, 30_000);
    } finally {
      if (cli.child.exitCode === null) cli.child.kill("SIGKILL");
    }
  }, TEST_MS);

  it("after being killed, shuts down the PostgreSQL it left behind and starts again", async () => {
    const cli = start();
    try {
      const urls = await cli.printed();
      expect(cli.output().stderr).toMatch(/left running by an earlier tera-cdc/);
      expect(urls.database).toBe(firstUrls.database);
      const consumer = await startConsumer(urls.broker, undefined, { protocolVersion: 4 });
      try {
        await query(urls.database, "UPDATE t_sites SET site_name = 'Renamed after restart' WHERE site_name = 'Added through the printed URL'");
        const [event] = await consumer.waitForCount(1, 60_000);
        expect(event!.object).toMatchObject({ site_name: "Renamed after restart" });
      } finally {
        await consumer.close();
      }
      cli.child.kill("SIGINT");
      expect(await exited(cli.child, 60_000)).toBe(0);
      expect(JSON.parse(readFileSync(join(dataDir, "embedded.json"), "utf8")).pid).toBeUndefined();
    } finally {
      if (cli.child.exitCode === null) cli.child.kill("SIGKILL");
    }
  }, TEST_MS);
});
