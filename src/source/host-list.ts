/**
 * libpq's multi-host URLs (`postgres://u@a:5432,b:5432/db?target_session_attrs=read-write`), which
 * node-postgres does not read: the URL is split into one URL per host, and before each connection
 * cycle the first host that answers and matches `target_session_attrs` is chosen. After a
 * failover the promoted standby is found this way, on the next reconnect.
 */
export type SessionAttrs = "any" | "read-write" | "primary" | "read-only" | "standby";

export interface DatabaseHosts {
  /** One single-host URL per host, in the order given. */
  readonly urls: readonly string[];
  readonly attrs: SessionAttrs;
}

const ATTRS: readonly SessionAttrs[] = ["any", "read-write", "primary", "read-only", "standby"];
export const URL_PARTS = /^(postgres(?:ql)?:\/\/)([^@/?#]*@)?([^/?#]*)(\/[^?#]*)?(\?[^#]*)?(#.*)?$/;

/** Splits a URL; a single-host URL gives itself. Throws (with the reason) on a URL it cannot split. */
export function splitHosts(url: string): DatabaseHosts {
  const match = URL_PARTS.exec(url);
  if (!match) return { urls: [url], attrs: "any" };
  const [, scheme, userinfo = "", hostList = "", path = "", query = ""] = match;
  const asked = new URLSearchParams(query.slice(1)).get("target_session_attrs");
  // Not a server setting: node-postgres would send an unknown query parameter to the server. The
  // other parameters are kept as written (re-encoding would turn %20 into +, which pg reads as +).
  const rest = query
    .slice(1)
    .split("&")
    .filter((part) => part !== "" && !part.startsWith("target_session_attrs="))
    .join("&");
  const hosts = hostList.split(",");
  if (hosts.some((h) => h === "")) throw new Error("a host of the list is empty");
  if (asked !== null && !ATTRS.includes(asked as SessionAttrs)) {
    throw new Error(`target_session_attrs=${asked} is not one of ${ATTRS.join(", ")}`);
  }
  // libpq's default is any; with several hosts, following the writable one is what a stream needs.
  const attrs = (asked as SessionAttrs | null) ?? (hosts.length > 1 ? "read-write" : "any");
  return { urls: hosts.map((host) => `${scheme}${userinfo}${host}${path}${rest ? `?${rest}` : ""}`), attrs };
}

