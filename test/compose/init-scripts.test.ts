import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import YAML from "yaml";
import { startCdc } from "../harness/cdc.js";
import { startConsumer } from "../harness/consumer.js";
import { useClusterAndBroker } from "../harness/servers.js";

/**
 * What the postgres image does with docker-compose.yml's init scripts, done by hand on a
 * throwaway cluster: each mounted file in name order (.sql through psql, .sh run with the image's
 * environment). Then tera-cdc streams as the tera_cdc role they create, not as a superuser.
 */
const ROOT = join(import.meta.dirname, "..", "..");
const PSQL = join(process.env.TERA_CDC_PG_BIN ?? "/usr/lib/postgresql/15/bin", "psql");
const compose = YAML.parse(readFileSync(join(ROOT, "docker-compose.yml"), "utf8")) as {
  services: Record<string, { volumes?: string[]; environment?: Record<string, string> }>;
};

const [postgres, broker] = useClusterAndBroker();

beforeAll(async () => {
  await postgres.query("CREATE DATABASE opentera");
});

describe("docker-compose.yml's database init scripts", () => {
  it("prepare a database that tera-cdc streams as the tera_cdc role with --preset opentera", async () => {
    const env = {
      ...process.env,
      PGHOST: "127.0.0.1",
      PGPORT: String(postgres.port),
      POSTGRES_USER: "postgres",
      POSTGRES_DB: "opentera",
      TERA_CDC_DB_PASSWORD: "secret-from-compose",
      PATH: `${join(PSQL, "..")}:${process.env.PATH}`,
    };
    const scripts = compose.services.db!.volumes!.filter((v) => v.includes("/docker-entrypoint-initdb.d/")).map((v) => v.split(":")[0]!);
    for (const script of scripts) {
      const path = join(ROOT, script);
      if (script.endsWith(".sql")) execFileSync(PSQL, ["-v", "ON_ERROR_STOP=1", "-q", "-U", "postgres", "-d", "opentera", "-f", path], { env, stdio: "pipe" });
      else execFileSync(path, [], { env, stdio: "pipe" });
    }
    const role = await postgres.query("SELECT rolreplication, rolsuper, rolpassword IS NOT NULL AS has_password FROM pg_authid WHERE rolname = 'tera_cdc'");
    expect(role.rows).toEqual([{ rolreplication: true, rolsuper: false, has_password: true }]);

    const consumer = await startConsumer(broker.url);
    const url = `postgres://tera_cdc:secret-from-compose@127.0.0.1:${postgres.port}/opentera`;
    const cdc = await startCdc({ databaseUrl: url, mqttUrl: broker.url, args: ["--preset", "opentera"] });
    try {
      // The publication came from sql/prepare-database.sql: tera-cdc had nothing to create but its slot.
      expect(cdc.logs()).not.toMatch(/CREATE PUBLICATION/);
      execFileSync(PSQL, ["-q", "-U", "postgres", "-d", "opentera", "-c", "UPDATE t_devices SET device_name = 'Kinect 2' WHERE id_device = 1"], { env, stdio: "pipe" });
      const [event] = await consumer.waitForCount(1, 60_000);
      expect(event!.model).toBe("device");
      expect(event!.object).toMatchObject({ id_device: 1, device_name: "Kinect 2" });
      expect(event!.object).not.toHaveProperty("device_token");
      expect(await cdc.stop()).toBe(0);
    } finally {
      if (cdc.child.exitCode === null) await cdc.kill();
      await consumer.close();
    }
  });
});
