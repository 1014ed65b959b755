import { randomBytes } from "node:crypto";
import { chmodSync, existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";

/**
 * The embedded default's generated credentials, in `<data-dir>/credentials.json`, readable by the
 * file's owner only (0600). They are never printed: the local commands (tail, snapshot, status,
 * audit, gateway, check, setup) read them from this file (src/embedded/local.ts), and psql reads the
 * database password from `<data-dir>/pgpass` (PGPASSFILE).
 */
export interface EmbeddedSecrets {
  /** Password of the embedded PostgreSQL's superuser `postgres` (scram-sha-256). */
  readonly postgresPassword: string;
  /** Broker identities: `tera-cdc` publishes events; `local` reads everything and may call RPC. */
  readonly broker: { readonly publisher: BrokerIdentity; readonly local: BrokerIdentity };
  /** HS256 secret of the development gateway's tokens. */
  readonly gatewaySecret: string;
}

export interface BrokerIdentity {
  readonly username: string;
  readonly password: string;
}

/** The broker user that `run` publishes as; the only one allowed to publish on event topics. */
export const PUBLISHER_USERNAME = "tera-cdc";
/** The broker user of the local commands: reads every topic, publishes RPC requests only. */
export const LOCAL_USERNAME = "tera-cdc-local";

const FILE = "credentials.json";
const PGPASS = "pgpass";

function generate(): EmbeddedSecrets {
  const secret = () => randomBytes(24).toString("base64url");
  return {
    postgresPassword: secret(),
    broker: { publisher: { username: PUBLISHER_USERNAME, password: secret() }, local: { username: LOCAL_USERNAME, password: secret() } },
    gatewaySecret: randomBytes(32).toString("hex"),
  };
}

function isSecrets(value: unknown): value is EmbeddedSecrets {
  const v = value as EmbeddedSecrets | null;
  return (
    typeof v?.postgresPassword === "string" &&
    typeof v.gatewaySecret === "string" &&
    typeof v.broker?.publisher?.password === "string" &&
    typeof v.broker?.local?.password === "string"
  );
}

/** The data folder's credentials, if it has them (undefined when missing or unreadable). */
export function readSecrets(dataDir: string): EmbeddedSecrets | undefined {
  try {
    const parsed = JSON.parse(readFileSync(join(dataDir, FILE), "utf8")) as unknown;
    return isSecrets(parsed) ? parsed : undefined;
  } catch {
    return undefined;
  }
}

/** The data folder's credentials, generated on first use and kept (0600) for every later run. */
export function ensureSecrets(dataDir: string): EmbeddedSecrets {
  const existing = readSecrets(dataDir);
  const path = join(dataDir, FILE);
  if (existing) {
    // A copy restored or made with a looser mode is tightened again.
    chmodSync(path, 0o600);
    return existing;
  }
  const secrets = generate();
  writeFileSync(path, `${JSON.stringify(secrets, null, 2)}\n`, { mode: 0o600 });
  chmodSync(path, 0o600);
  return secrets;
}

/** Path of the libpq password file for the embedded database (`PGPASSFILE=<path> psql <url>`). */
export function pgpassPath(dataDir: string): string {
  return join(dataDir, PGPASS);
}

/** Writes the libpq password file (0600, as libpq requires) for the embedded database on `port`. */
export function writePgpass(dataDir: string, port: number, password: string): void {
  const path = pgpassPath(dataDir);
  const line = `127.0.0.1:${port}:*:postgres:${password.replaceAll("\\", "\\\\").replaceAll(":", "\\:")}\n`;
  if (existsSync(path) && readFileSync(path, "utf8") === line) return chmodSync(path, 0o600);
  writeFileSync(path, line, { mode: 0o600 });
  chmodSync(path, 0o600);
}
