import { existsSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import YAML from "yaml";
import { runConfig } from "../../src/cli/run.js";

/**
 * No Docker engine runs here, so docker-compose.yml is checked as a document: the services, their
 * commands, ports and health checks, that every file it mounts or builds from exists, and that
 * tera-cdc's command line is one `tera-cdc run` accepts.
 */
const ROOT = join(import.meta.dirname, "..", "..");
const text = readFileSync(join(ROOT, "docker-compose.yml"), "utf8");
const compose = YAML.parse(text) as {
  services: Record<string, Service>;
  volumes?: Record<string, unknown>;
};

interface Service {
  image?: string;
  build?: { context: string; dockerfile: string };
  command?: string[];
  environment?: Record<string, string>;
  volumes?: string[];
  ports?: string[];
  depends_on?: Record<string, { condition: string }>;
  healthcheck?: { test: string[]; interval?: string; retries?: number };
}

/** `${NAME:-default}` as Compose substitutes it when NAME is not set. */
function withDefaults(value: string): string {
  return value.replace(/\$\{[A-Z_]+:-([^}]*)\}/g, "$1");
}

function mounts(service: Service): { source: string; target: string }[] {
  return (service.volumes ?? []).map((v) => {
    const [source, target] = v.split(":");
    return { source: source!, target: target! };
  });
}

describe("docker-compose.yml", () => {
  const { db, broker } = compose.services;
  const cdc = compose.services["tera-cdc"]!;

  it("has the three services, each with a health check, and the one-shot secrets step", () => {
    expect(Object.keys(compose.services).sort()).toEqual(["broker", "db", "secrets", "tera-cdc"]);
    for (const [name, service] of Object.entries(compose.services)) {
      if (name === "secrets") continue;
      expect(service.healthcheck?.test?.[0], name).toMatch(/^CMD(-SHELL)?$/);
      expect(service.healthcheck!.test.length, name).toBeGreaterThan(1);
      expect(service.healthcheck!.retries, name).toBeGreaterThan(0);
    }
  });

  it("runs PostgreSQL 15 with wal_level=logical and the sample OpenTera schema from sql/", () => {
    expect(db!.image).toMatch(/^postgres:15(\b|$)/);
    expect(db!.command!.join(" ")).toMatch(/-c wal_level=logical/);
    const initScripts = mounts(db!).filter((m) => m.target.startsWith("/docker-entrypoint-initdb.d/"));
    expect(initScripts.map((m) => m.source)).toEqual([
      "./sql/opentera-schema.sql",
      "./sql/opentera-sample-data.sql",
      "./sql/prepare-database.sql",
      "./docker/tera-cdc-password.sh",
    ]);
    // The image runs them in name order: schema, data, then the DBA's preparation.
    expect(initScripts.map((m) => m.target)).toEqual([...initScripts.map((m) => m.target)].sort());
    for (const m of initScripts) expect(existsSync(join(ROOT, m.source)), m.source).toBe(true);
    expect(statSync(join(ROOT, "docker/tera-cdc-password.sh")).mode & 0o111).not.toBe(0);
    expect(db!.environment!.POSTGRES_DB).toBe("opentera");
    // pg_isready over TCP: the entrypoint's temporary init server listens on the socket only.
    expect(db!.healthcheck!.test).toEqual(expect.arrayContaining(["pg_isready", "-h", "127.0.0.1"]));
    expect(db!.ports!.map(withDefaults)).toEqual(["127.0.0.1:5433:5432"]);
  });

  it("runs Mosquitto 2 with a listener on 1883 that tera-cdc and the health check use", () => {
    expect(broker!.image).toMatch(/^eclipse-mosquitto:2(\b|$)/);
    const config = mounts(broker!).find((m) => m.target === "/mosquitto/config/mosquitto.conf")!;
    const conf = readFileSync(join(ROOT, config.source), "utf8");
    expect(conf).toMatch(/^listener 1883$/m);
    // Issue 14 item 6: passwords and an ACL, generated at the first start (test/compose/broker-acl.test.ts runs them).
    expect(conf).toMatch(/^allow_anonymous false$/m);
    expect(conf).toMatch(/^password_file \/secrets\/passwd$/m);
    expect(conf).toMatch(/^acl_file \/mosquitto\/config\/acl$/m);
    expect(mounts(broker!)).toEqual(expect.arrayContaining([{ source: "./docker/mosquitto.acl", target: "/mosquitto/config/acl" }, { source: "secrets", target: "/secrets" }]));
    expect(broker!.depends_on).toEqual({ secrets: { condition: "service_completed_successfully" } });
    expect(mounts(compose.services.secrets!)).toEqual(expect.arrayContaining([{ source: "./docker/init-secrets.sh", target: "/init-secrets.sh" }]));
    // The health check subscribes as ops (`$$` is Compose's escape for a literal `$`).
    expect(broker!.healthcheck!.test[0]).toBe("CMD-SHELL");
    expect(broker!.healthcheck!.test[1]).toMatch(/^mosquitto_sub .*-u ops -P "\$\$\(cat \/secrets\/mqtt-ops\.password\)".*\$\$SYS\/broker\/version/);
    // No password in the file: tera-cdc reads its own from the secrets volume.
    expect(text).not.toMatch(/TERA_CDC_MQTT_PASSWORD:/);
    expect(broker!.ports!.map(withDefaults)).toEqual(["127.0.0.1:1883:1883"]);
  });

  it("starts tera-cdc only once the database and the broker are healthy", () => {
    expect(cdc.depends_on).toEqual({ db: { condition: "service_healthy" }, broker: { condition: "service_healthy" } });
  });

  it("builds tera-cdc from docker/Dockerfile on Node 20: compiled in a build stage, running bin/tera-cdc.js", () => {
    expect(cdc.build).toEqual({ context: ".", dockerfile: "docker/Dockerfile" });
    const dockerfile = readFileSync(join(ROOT, cdc.build!.dockerfile), "utf8");
    expect(dockerfile).toMatch(/^FROM node:20/m);
    expect(dockerfile).toMatch(/^RUN npm ci --no-audit/m);
    expect(dockerfile).toMatch(/^RUN npm ci --omit=dev/m);
    expect(dockerfile).toMatch(/^COPY --from=build \/app\/dist \.\/dist$/m);
    expect(dockerfile).toMatch(/^ENTRYPOINT \["bin\/tera-cdc\.js"\]$/m);
    for (const copied of dockerfile.matchAll(/^COPY (?!--from)(\S+)/gm)) expect(existsSync(join(ROOT, copied[1]!)), copied[1]).toBe(true);
  });

  it("gives tera-cdc a command line `tera-cdc run` accepts: preset opentera, db and broker by service name, health port", () => {
    const [command, ...args] = cdc.command!;
    expect(command).toBe("run");
    const env = Object.fromEntries(Object.entries(cdc.environment!).map(([k, v]) => [k, withDefaults(v)]));
    const settings = runConfig(args, env);
    if (settings === "help") throw new Error("help");
    expect(settings.preset).toBe("opentera");
    expect(settings.embedded).toMatchObject({ database: false, broker: false });
    const database = new URL(settings.config.source.databaseUrl);
    expect([database.hostname, database.port, database.pathname, database.username]).toEqual(["db", "5432", "/opentera", "tera_cdc"]);
    // The role sql/prepare-database.sql creates, with the password docker/tera-cdc-password.sh sets.
    expect(readFileSync(join(ROOT, "sql/prepare-database.sql"), "utf8")).toMatch(/CREATE ROLE tera_cdc WITH LOGIN REPLICATION/);
    expect(database.password).toBe(withDefaults(db!.environment!.TERA_CDC_DB_PASSWORD!));
    expect(new URL(settings.config.sink.mqtt.url).host).toBe("broker:1883");
    expect(settings.config.ops.healthPort).toBe(8080);
    expect(cdc.healthcheck!.test.join(" ")).toContain(`http://127.0.0.1:${settings.config.ops.healthPort}/healthz`);
    expect(cdc.ports!.map(withDefaults)).toEqual([`127.0.0.1:8080:${settings.config.ops.healthPort}`]);
  });

  it("keeps the database in a named volume", () => {
    expect(mounts(db!).find((m) => m.target === "/var/lib/postgresql/data")?.source).toBe("db-data");
    expect(compose.volumes).toHaveProperty("db-data");
  });
});
