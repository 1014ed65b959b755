import { execFileSync } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { chownSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { freePort, waitFor } from "./ports.js";
import { startServerContainer, useContainers } from "./containers.js";
import { exited, spawnTracked } from "./processes.js";

/** PostgreSQL major versions whose binaries are devDependencies (npm aliases pg13 … pg18, package.json). */
export const PG_VERSIONS = [13, 14, 15, 16, 17, 18] as const;
export type PgVersion = (typeof PG_VERSIONS)[number];

/**
 * The binaries a cluster is started from: `TERA_CDC_TEST_PG=17` (what `npm run test:versions` sets)
 * picks the npm package of that major version; otherwise TERA_CDC_PG_BIN or Debian's PostgreSQL 15.
 */
export function postgresBinaries(version: PgVersion | undefined = selectedVersion()): string {
  if (version === undefined) return process.env.TERA_CDC_PG_BIN ?? "/usr/lib/postgresql/15/bin";
  return join(import.meta.dirname, "..", "..", "node_modules", `pg${version}`, "native", "bin");
}

function selectedVersion(): PgVersion | undefined {
  const text = process.env.TERA_CDC_TEST_PG;
  if (!text) return undefined;
  const version = Number(text) as PgVersion;
  if (!PG_VERSIONS.includes(version)) throw new Error(`TERA_CDC_TEST_PG=${text}: expected one of ${PG_VERSIONS.join(", ")}`);
  return version;
}

export interface PostgresServer {
  readonly url: string;
  readonly port: number;
  /** Runs SQL on a fresh connection. */
  query(sql: string, params?: unknown[]): Promise<pg.QueryResult>;
  /** A connected client the caller ends. */
  connect(): Promise<pg.Client>;
  /** Fast shutdown then start again on the same port and data. */
  restart(): Promise<void>;
  stopServer(): Promise<void>;
  startServer(): Promise<void>;
  close(): Promise<void>;
  /**
   * A streaming physical standby of this (local) cluster, from a base backup of the running primary; `settings`
   * add to the primary's (primary_slot_name, sync_replication_slots, ...). Its close() removes it.
   */
  startStandby?(settings?: Record<string, string>): Promise<PostgresServer>;
  /** SIGKILL of the postmaster: a crash of the server (local clusters only). */
  kill?(): Promise<void>;
}

export interface PostgresOptions {
  readonly walLevel?: "logical" | "replica";
  /** Extra `-c name=value` settings. */
  readonly settings?: Record<string, string>;
  /** Major version (binaries from node_modules/pgNN); default TERA_CDC_TEST_PG, else Debian's 15. */
  readonly version?: PgVersion;
}

/**
 * A throwaway PostgreSQL (15, or the version asked for) for one test file: its own data directory and a free port,
 * `wal_level=logical` unless asked otherwise. A Docker engine would be used through
 * testcontainers where one exists; this machine has none, so a local cluster is started as the
 * `postgres` user (initdb refuses root).
 */
export async function startPostgres(options: PostgresOptions = {}): Promise<PostgresServer> {
  const settings: Record<string, string> = {
    wal_level: options.walLevel ?? "logical",
    max_wal_senders: "10",
    max_replication_slots: "10",
    fsync: "off",
    full_page_writes: "off",
    max_connections: "100",
    ...options.settings,
  };
  const bin = postgresBinaries(options.version ?? selectedVersion());
  if (await useContainers()) return startPostgresContainer(settings, options.version ?? selectedVersion() ?? 15);
  const root = mkdtempSync(join(tmpdir(), "tera-cdc-pg-"));
  const dataDir = join(root, "data");
  const asRoot = process.getuid?.() === 0;
  const uid = asRoot ? Number(execFileSync("id", ["-u", "postgres"]).toString()) : undefined;
  const gid = asRoot ? Number(execFileSync("id", ["-g", "postgres"]).toString()) : undefined;
  if (asRoot) chownSync(root, uid!, gid!);
  execFileSync(join(bin, "initdb"), ["-D", dataDir, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync", "--locale=C"], {
    uid,
    gid,
    stdio: "pipe",
  });
  const cluster = await localCluster({ root, dataDir, bin, uid, gid, settings });
  return {
    ...cluster.server,
    async startStandby(standbySettings = {}) {
      // A base backup of the running primary with the low-level backup functions and a file copy
      // (the npm packages have no pg_basebackup): the primary keeps running and taking writes.
      const standbyRoot = mkdtempSync(join(tmpdir(), "tera-cdc-pg-standby-"));
      const standbyData = join(standbyRoot, "data");
      const session = await cluster.server.connect();
      try {
        // 15+: pg_backup_start/stop; 14: their non-exclusive forms pg_start_backup/pg_stop_backup.
        const modern = (await session.query("SELECT count(*)::int AS n FROM pg_proc WHERE proname = 'pg_backup_start'")).rows[0].n > 0;
        await session.query(modern ? "SELECT pg_backup_start('tera-cdc standby', true)" : "SELECT pg_start_backup('tera-cdc standby', true, false)");
        // WAL comes from the primary by streaming; a file the server removes mid-copy is not needed.
        execFileSync("sh", ["-c", 'cp -a "$1" "$2" 2>/dev/null; exit 0', "sh", dataDir, standbyData]);
        const stopped = (await session.query(modern ? "SELECT labelfile, spcmapfile FROM pg_backup_stop(false)" : "SELECT labelfile, spcmapfile FROM pg_stop_backup(false, false)")).rows[0];
        for (const name of ["postmaster.pid", "postmaster.opts"]) rmSync(join(standbyData, name), { force: true });
        for (const file of readdirSync(join(standbyData, "pg_wal"))) if (/^[0-9A-F]{24}/.test(file)) rmSync(join(standbyData, "pg_wal", file), { force: true });
        writeFileSync(join(standbyData, "backup_label"), stopped.labelfile);
        if (stopped.spcmapfile) writeFileSync(join(standbyData, "tablespace_map"), stopped.spcmapfile);
      } finally {
        await session.end();
      }
      writeFileSync(join(standbyData, "standby.signal"), "");
      if (asRoot) execFileSync("chown", ["-R", `${uid}:${gid}`, standbyRoot]);
      const standby = await localCluster({
        root: standbyRoot,
        dataDir: standbyData,
        bin,
        uid,
        gid,
        settings: {
          ...settings,
          hot_standby: "on",
          primary_conninfo: `host=127.0.0.1 port=${cluster.server.port} user=postgres dbname=postgres application_name=standby`,
          ...standbySettings,
        },
      });
      return standby.server;
    },
    kill: cluster.kill,
  };
}

/** A cluster in `dataDir` on a free port, started; `kill` is SIGKILL of the postmaster (a crash). */
async function localCluster(c: {
  root: string;
  dataDir: string;
  bin: string;
  uid?: number;
  gid?: number;
  settings: Record<string, string>;
}): Promise<{ server: PostgresServer; start(): Promise<void>; stop(): Promise<void>; kill(): Promise<void> }> {
  const { root, dataDir, bin, uid, gid } = c;
  const port = await freePort();
  const settings = { ...c.settings, listen_addresses: "127.0.0.1", unix_socket_directories: root };
  let child: ChildProcess | null = null;
  let log = "";
  const start = async () => {
    const args = ["-D", dataDir, "-p", String(port), ...Object.entries(settings).flatMap(([k, v]) => ["-c", `${k}=${v}`])];
    child = spawnTracked(join(bin, "postgres"), args, { uid, gid, stdio: ["ignore", "pipe", "pipe"] });
    child.stderr?.on("data", (d: Buffer) => {
      log = (log + d.toString()).slice(-20_000);
    });
    await waitFor(`PostgreSQL on port ${port}`, async () => {
      if (child?.exitCode !== null) throw new Error(`postgres exited: ${log.slice(-2000)}`);
      const client = new pg.Client({ host: "127.0.0.1", port, user: "postgres", database: "postgres" });
      try {
        await client.connect();
        return true;
      } finally {
        await client.end().catch(() => {});
      }
    });
  };
  const stop = async () => {
    const running = child;
    child = null;
    if (!running || running.exitCode !== null) return;
    running.kill("SIGINT"); // fast shutdown
    await exited(running, 30_000);
  };
  const kill = async () => {
    const running = child;
    child = null;
    if (!running || running.exitCode !== null) return;
    running.kill("SIGKILL");
    await exited(running, 30_000);
    // Its backends notice the postmaster's death and exit; the port is free once they have.
    await waitFor(`the killed PostgreSQL's backends to exit (port ${port})`, async () => {
      const client = new pg.Client({ host: "127.0.0.1", port, user: "postgres", database: "postgres", connectionTimeoutMillis: 1000 });
      try {
        await client.connect();
        return undefined;
      } catch {
        return true;
      } finally {
        await client.end().catch(() => {});
      }
    }, 30_000);
  };
  await start();
  const server = postgresServer(`postgres://postgres@127.0.0.1:${port}/postgres`, port, {
    stopServer: stop,
    startServer: start,
    close: async () => {
      await stop();
      rmSync(root, { recursive: true, force: true });
    },
  });
  return { server, start, stop, kill };
}

async function startPostgresContainer(settings: Record<string, string>, version: number): Promise<PostgresServer> {
  const flags = Object.entries(settings).map(([k, v]) => `-c ${k}=${v}`).join(" ");
  const container = await startServerContainer({
    image: `postgres:${version}`,
    port: 5432,
    env: { POSTGRES_HOST_AUTH_METHOD: "trust" },
    serve: `docker-entrypoint.sh postgres ${flags}`,
    stop: `su postgres -c "pg_ctl -D $PGDATA stop -m fast"`,
    readyLog: /database system is ready to accept connections/,
  });
  const url = `postgres://postgres@${container.host}:${container.port}/postgres`;
  const ready = () =>
    waitFor("PostgreSQL in its container", async () => {
      const client = new pg.Client({ connectionString: url });
      try {
        await client.connect();
        return true;
      } finally {
        await client.end().catch(() => {});
      }
    });
  await ready();
  return postgresServer(url, container.port, {
    stopServer: () => container.stopServer(),
    startServer: async () => {
      await container.startServer();
      await ready();
    },
    close: () => container.close(),
  });
}

function postgresServer(
  url: string,
  port: number,
  control: { stopServer(): Promise<void>; startServer(): Promise<void>; close(): Promise<void> },
): PostgresServer {
  const connect = async () => {
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    return client;
  };
  return {
    url,
    port,
    connect,
    async query(sql, params) {
      const client = await connect();
      try {
        return await client.query(sql, params as unknown[]);
      } finally {
        await client.end();
      }
    },
    async restart() {
      await control.stopServer();
      await control.startServer();
    },
    stopServer: () => control.stopServer(),
    startServer: () => control.startServer(),
    close: () => control.close(),
  };
}
