import pg from "pg";

/** A query on a plain (non-replication) connection. */
export type Query = (sql: string, params?: unknown[]) => Promise<pg.QueryResult>;

/** Runs work on one plain connection to the database, closed afterwards. */
export async function withDatabase<T>(databaseUrl: string, applicationName: string, work: (query: Query) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: databaseUrl, application_name: applicationName });
  client.on("error", () => {});
  await client.connect();
  try {
    return await work((sql, params) => client.query(sql, params as unknown[]));
  } finally {
    await client.end().catch(() => {});
  }
}

/**
 * node-postgres reads `sslmode=require` (and prefer, verify-ca) as verify-full and prints a
 * multi-line warning, so a URL that works with psql against a self-signed server fails here.
 * Asking for libpq's meaning keeps one URL valid for both; verify-full still verifies.
 */
export function withLibpqSslModes(url: string): string {
  if (!/[?&]sslmode=/.test(url) || /[?&]uselibpqcompat=/.test(url)) return url;
  return `${url}${url.includes("?") ? "&" : "?"}uselibpqcompat=true`;
}
