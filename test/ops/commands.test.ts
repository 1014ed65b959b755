import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startBroker } from "../harness/broker.js";
import { runCli, startCdc } from "../harness/cdc.js";
import { startPostgres, type PostgresServer } from "../harness/postgres.js";
import { exited } from "../harness/processes.js";

/** `check`, `setup` and every command's --help, against a real PostgreSQL. */
let pg: PostgresServer;
let replicaPg: PostgresServer;

async function cli(args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const { child, output } = runCli(args, env);
  const code = await exited(child, 60_000);
  return { code, ...output() };
}

beforeAll(async () => {
  [pg, replicaPg] = await Promise.all([startPostgres(), startPostgres({ walLevel: "replica" })]);
  await pg.query("CREATE TABLE good (id int PRIMARY KEY, n int)");
  await pg.query("CREATE TABLE nopk (a int, b int)");
  await pg.query("CREATE TABLE notes (id int PRIMARY KEY, body text)");
  await pg.query("CREATE ROLE app LOGIN");
  await pg.query("GRANT SELECT ON good TO app");
  await replicaPg.query("CREATE TABLE good (id int PRIMARY KEY, n int)");
});

afterAll(async () => {
  await Promise.all([pg?.close(), replicaPg?.close()]);
});

describe("check", () => {
  it("passes on a good database and exits 0", async () => {
    await pg.query("CREATE PUBLICATION pub_good FOR TABLE good");
    const r = await cli(["check", "--database-url", pg.url, "--tables", "good", "--publication", "pub_good", "--slot", "slot_good"]);
    expect(r.stdout).toMatch(/^PASS {2}wal_level +logical$/m);
    expect(r.stdout).toMatch(/^PASS {2}max_replication_slots +0 of 10 in use/m);
    expect(r.stdout).toMatch(/^PASS {2}max_wal_senders +0 of 10 in use/m);
    expect(r.stdout).toMatch(/^PASS {2}role +postgres is a superuser/m);
    expect(r.stdout).toMatch(/^PASS {2}publication +"pub_good" holds public\.good/m);
    expect(r.stdout).toMatch(/^PASS {2}table public\.good +primary key \(id\)/m);
    expect(r.stdout).toMatch(/^PASS {2}slot slot_good +does not exist yet/m);
    expect(r.stdout).not.toMatch(/^FAIL/m);
    expect(r.code).toBe(0);
  });

  it("fails on a wal_level=replica cluster with the configuration line that fixes it", async () => {
    const r = await cli(["check", "--database-url", replicaPg.url, "--tables", "good"]);
    expect(r.stdout).toMatch(/^FAIL {2}wal_level +wal_level is "replica", logical replication needs "logical"$/m);
    expect(r.stdout).toMatch(/fix: ALTER SYSTEM SET wal_level = logical; then restart PostgreSQL/);
    expect(r.code).toBe(1);
  });

  it("fails on a table without a primary key, naming the statement that fixes it", async () => {
    await pg.query("CREATE PUBLICATION pub_nopk FOR TABLE nopk");
    const r = await cli(["check", "--database-url", pg.url, "--tables", "nopk", "--publication", "pub_nopk"]);
    expect(r.stdout).toMatch(/^FAIL {2}table public\.nopk +table public\.nopk has no primary key and no replica identity/m);
    expect(r.stdout).toContain('fix: add a primary key or run ALTER TABLE "public"."nopk" REPLICA IDENTITY FULL;');
    expect(r.code).toBe(1);
  });

  it("fails for a role without REPLICATION with the ALTER ROLE that fixes it", async () => {
    const url = pg.url.replace("postgres@", "app@");
    const r = await cli(["check", "--database-url", url, "--tables", "good", "--publication", "pub_good"]);
    expect(r.stdout).toMatch(/^FAIL {2}role +role "app" lacks the REPLICATION attribute$/m);
    expect(r.stdout).toContain('fix: ALTER ROLE "app" WITH REPLICATION; as a superuser');
    expect(r.code).toBe(1);
  });

  it("fails on a missing publication with the CREATE PUBLICATION that fixes it", async () => {
    const r = await cli(["check", "--database-url", pg.url, "--tables", "good", "--publication", "pub_missing"]);
    expect(r.stdout).toMatch(/^FAIL {2}publication +publication "pub_missing" does not exist$/m);
    expect(r.stdout).toContain('fix: CREATE PUBLICATION "pub_missing" FOR TABLE "public"."good";');
    expect(r.code).toBe(1);
  });

  it("exits 0 on a healthy streaming setup: the slot held by a running tera-cdc is information, not a warning (issue 16)", async () => {
    await pg.query("CREATE TABLE streamed (id int PRIMARY KEY, n int)");
    const broker = await startBroker();
    const cdc = await startCdc({ databaseUrl: pg.url, mqttUrl: broker.url, args: ["--tables", "streamed", "--publication", "pub_streamed", "--slot", "slot_streamed"] });
    try {
      const r = await cli(["check", "--database-url", pg.url, "--tables", "streamed", "--publication", "pub_streamed", "--slot", "slot_streamed"]);
      expect(r.stdout).toMatch(/^INFO {2}slot slot_streamed +pgoutput, held by a running tera-cdc \(walsender PID \d+\)/m);
      expect(r.stdout).toMatch(/1 for information$/m);
      expect(r.stdout).not.toMatch(/^(WARN|FAIL)/m);
      expect(r.code).toBe(0);
    } finally {
      await cdc.stop();
      await broker.close();
    }
  }, 120_000);

  it("reports the privilege snapshots need (pg_logical_emit_message) with the GRANT that gives it", async () => {
    await pg.query("CREATE ROLE snap LOGIN REPLICATION");
    await pg.query("GRANT SELECT ON good TO snap");
    await pg.query("REVOKE EXECUTE ON FUNCTION pg_logical_emit_message(boolean, text, text) FROM PUBLIC");
    try {
      const url = pg.url.replace("postgres@", "snap@");
      const args = ["check", "--database-url", url, "--tables", "good", "--publication", "pub_good", "--slot", "slot_snap"];
      const r = await cli(args);
      expect(r.stdout).toMatch(/^WARN {2}snapshots +role snap cannot write snapshot watermarks/m);
      expect(r.stdout).toContain('fix: GRANT EXECUTE ON FUNCTION pg_logical_emit_message(boolean, text, text) TO "snap";');
      expect(r.code).toBe(1);
      await pg.query('GRANT EXECUTE ON FUNCTION pg_logical_emit_message(boolean, text, text) TO "snap"');
      const fixed = await cli(args);
      expect(fixed.stdout).toMatch(/^PASS {2}snapshots +may write snapshot watermarks/m);
      expect(fixed.stdout).not.toMatch(/^WARN {2}snapshots/m);
    } finally {
      await pg.query("GRANT EXECUTE ON FUNCTION pg_logical_emit_message(boolean, text, text) TO PUBLIC");
    }
  });

  it("warns about TOASTable columns without REPLICA IDENTITY FULL: exit 1 unless --allow-warnings", async () => {
    await pg.query("CREATE PUBLICATION pub_notes FOR TABLE notes");
    const args = ["check", "--database-url", pg.url, "--tables", "notes", "--publication", "pub_notes", "--slot", "slot_notes"];
    const r = await cli(args);
    expect(r.stdout).toMatch(/^WARN {2}table public\.notes +TOASTable columns without REPLICA IDENTITY FULL \(body\)/m);
    expect(r.stdout).toContain('fix: ALTER TABLE "public"."notes" REPLICA IDENTITY FULL;');
    expect(r.code).toBe(1);
    expect((await cli([...args, "--allow-warnings"])).code).toBe(0);
    const json = JSON.parse((await cli([...args, "--json"])).stdout) as { verdict: string; name: string; fix?: string }[];
    expect(json.find((x) => x.verdict === "WARN")).toMatchObject({ name: "table public.notes", fix: 'ALTER TABLE "public"."notes" REPLICA IDENTITY FULL;' });
  });
});

describe("setup", () => {
  it("creates the publication for --tables, printing the statement, after which check passes", async () => {
    await pg.query("CREATE TABLE orders (id int PRIMARY KEY, total int)");
    const dry = await cli(["setup", "--database-url", pg.url, "--tables", "orders", "--publication", "pub_orders", "--dry-run"]);
    expect(dry.stdout).toBe('would run: CREATE PUBLICATION "pub_orders" FOR TABLE "public"."orders";\n');
    expect((await pg.query("SELECT 1 FROM pg_publication WHERE pubname = 'pub_orders'")).rowCount).toBe(0);

    const r = await cli(["setup", "--database-url", pg.url, "--tables", "orders", "--publication", "pub_orders"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('applied: CREATE PUBLICATION "pub_orders" FOR TABLE "public"."orders";\n');
    const published = await pg.query("SELECT tablename FROM pg_publication_tables WHERE pubname = 'pub_orders'");
    expect(published.rows).toEqual([{ tablename: "orders" }]);
    const again = await cli(["setup", "--database-url", pg.url, "--tables", "orders", "--publication", "pub_orders"]);
    expect(again.stdout).toMatch(/^nothing to do/);
    expect((await cli(["check", "--database-url", pg.url, "--tables", "orders", "--publication", "pub_orders"])).code).toBe(0);
  });

  it("adds missing tables and sets REPLICA IDENTITY FULL when asked", async () => {
    await pg.query("CREATE TABLE docs (id int PRIMARY KEY, body text)");
    const r = await cli(["setup", "--database-url", pg.url, "--tables", "orders,docs", "--publication", "pub_orders", "--replica-identity-full"]);
    expect(r.code).toBe(0);
    expect(r.stdout.split("\n").filter(Boolean)).toEqual([
      'applied: ALTER TABLE "public"."orders" REPLICA IDENTITY FULL;',
      'applied: ALTER TABLE "public"."docs" REPLICA IDENTITY FULL;',
      'applied: ALTER PUBLICATION "pub_orders" ADD TABLE "public"."docs";',
    ]);
    const identity = await pg.query("SELECT relname, relreplident FROM pg_class WHERE relname IN ('orders', 'docs') ORDER BY relname");
    expect(identity.rows).toEqual([
      { relname: "docs", relreplident: "f" },
      { relname: "orders", relreplident: "f" },
    ]);
  });

  it("check --apply creates the missing publication, then passes", async () => {
    await pg.query("CREATE TABLE parts (id int PRIMARY KEY)");
    const r = await cli(["check", "--database-url", pg.url, "--tables", "parts", "--publication", "pub_parts", "--apply"]);
    expect(r.stdout).toContain('applied: CREATE PUBLICATION "pub_parts" FOR TABLE "public"."parts";');
    expect(r.stdout).toMatch(/^PASS {2}publication +"pub_parts" holds public\.parts/m);
    expect(r.code).toBe(0);
  });

  it("--print-sql prints the whole preparation for any tables without a database; PostgreSQL runs it and check then passes as the new role (issue 16)", async () => {
    await pg.query("CREATE SCHEMA shop");
    await pg.query("CREATE TABLE shop.orders (id int PRIMARY KEY, total numeric)");
    await pg.query("CREATE TABLE shop.customers (id int PRIMARY KEY, name text)");
    const printed = await cli(["setup", "--tables", "shop.orders,shop.customers", "--print-sql", "--role", "shop_cdc", "--publication", "pub_shop", "--replica-identity-full"]);
    expect(printed.code).toBe(0);
    // customers.name is TOASTable: without FULL, check would warn about unchanged large values.
    expect(printed.stdout).toContain('ALTER TABLE "shop"."customers" REPLICA IDENTITY FULL;');
    expect(printed.stdout).toContain("ALTER SYSTEM SET wal_level = logical;");
    expect(printed.stdout).toMatch(/RESTART PostgreSQL/);
    // The oracle is PostgreSQL itself: the script runs (twice: every statement can run again).
    await pg.query(printed.stdout);
    await pg.query(printed.stdout);
    const role = (await pg.query("SELECT rolcanlogin, rolreplication, rolsuper FROM pg_roles WHERE rolname = 'shop_cdc'")).rows[0];
    expect(role).toEqual({ rolcanlogin: true, rolreplication: true, rolsuper: false });
    const url = pg.url.replace("postgres@", "shop_cdc@");
    const checked = await cli(["check", "--database-url", url, "--tables", "shop.orders,shop.customers", "--publication", "pub_shop", "--slot", "slot_shop"]);
    expect(checked.stdout, checked.stdout).not.toMatch(/^(FAIL|WARN)/m);
    expect(checked.code).toBe(0);
  });

  it("--apply runs the preparation on the database, printing each statement", async () => {
    await pg.query("CREATE TABLE invoices (id int PRIMARY KEY, body text)");
    const r = await cli(["setup", "--tables", "invoices", "--apply", "--role", "inv_cdc", "--publication", "pub_inv", "--replica-identity-full", "--database-url", pg.url]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('applied: ALTER TABLE "public"."invoices" REPLICA IDENTITY FULL;');
    expect(r.stdout).toMatch(/^applied: DO \$\$ BEGIN IF NOT EXISTS \(SELECT 1 FROM pg_publication/m);
    const checked = await cli(["check", "--database-url", pg.url.replace("postgres@", "inv_cdc@"), "--tables", "invoices", "--publication", "pub_inv", "--slot", "slot_inv"]);
    expect(checked.stdout, checked.stdout).not.toMatch(/^(FAIL|WARN)/m);
    expect(checked.code).toBe(0);
  });

  it("refuses to guess the tables when the publication does not exist (exit 2)", async () => {
    const r = await cli(["setup", "--database-url", pg.url, "--publication", "pub_none"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('publication "pub_none" does not exist and no tables are given: give --tables');
  });
});

describe("every command", () => {
  for (const command of ["run", "tail", "check", "status", "setup"]) {
    it(`${command} --help prints flags and examples and exits 0; an unknown flag exits 2`, async () => {
      const help = await cli([command, "--help"]);
      expect(help.code).toBe(0);
      expect(help.stdout).toMatch(new RegExp(`^Usage: tera-cdc ${command} `));
      expect(help.stdout).toMatch(/\nExamples:\n {2}tera-cdc /);
      const bad = await cli([command, "--no-such-flag"]);
      expect(bad.code).toBe(2);
      expect(bad.stderr).toContain("unknown flag --no-such-flag");
    });
  }

  it("--version and -v print the package's version and exit 0", async () => {
    const { version } = JSON.parse(readFileSync(join(import.meta.dirname, "..", "..", "package.json"), "utf8"));
    for (const flag of ["--version", "-v"]) {
      const r = await cli([flag]);
      expect(r.stdout).toBe(`tera-cdc ${version}\n`);
      expect(r.code).toBe(0);
    }
  });

  it("a missing database URL is a one-line error with exit 2", async () => {
    const r = await cli(["check"], { TERA_CDC_DATABASE_URL: "" });
    expect(r.code).toBe(2);
    expect(r.stderr.trim()).toBe("tera-cdc check: setting database-url is missing: give --database-url or TERA_CDC_DATABASE_URL");
  });
});
