import pg from "pg";
import { type SessionAttrs, splitHosts, URL_PARTS } from "./host-list.js";

/** What a connection attempt to one host found. */
interface Probe {
  readonly url: string;
  readonly standby?: boolean;
  readonly error?: string;
}

async function probe(url: string, timeoutMs: number): Promise<Probe> {
  const client = new pg.Client({ connectionString: url, application_name: "tera-cdc probe", connectionTimeoutMillis: timeoutMs });
  client.on("error", () => {});
  try {
    await client.connect();
    const row = (await client.query("SELECT pg_is_in_recovery() AS standby")).rows[0];
    return { url, standby: row.standby === true };
  } catch (error) {
    return { url, error: (error as Error).message.split("\n")[0] };
  } finally {
    await client.end().catch(() => {});
  }
}

function matches(attrs: SessionAttrs, standby: boolean): boolean {
  if (attrs === "any") return true;
  return attrs === "read-write" || attrs === "primary" ? !standby : standby;
}

/**
 * The single-host URL to connect to now: the URL itself when it names one host, else the first
 * host that answers and matches. Throws an error without an SQLSTATE (so: a lost connection,
 * retried) naming what each host said when none does.
 */
export async function chooseHost(url: string, timeoutMs = 5_000): Promise<string> {
  const hosts = splitHosts(url);
  if (hosts.urls.length === 1 && hosts.attrs === "any") return url;
  const seen: string[] = [];
  for (const candidate of hosts.urls) {
    const found = await probe(candidate, timeoutMs);
    if (found.standby !== undefined && matches(hosts.attrs, found.standby)) return candidate;
    seen.push(`${hostOf(candidate)}: ${found.error ?? (found.standby ? "a standby" : "a primary")}`);
  }
  throw new Error(`no host of the database URL is ${hosts.attrs} (${seen.join("; ")})`);
}

function hostOf(url: string): string {
  return URL_PARTS.exec(url)?.[3] ?? "?";
}
