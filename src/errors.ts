/**
 * What went wrong, told apart by class instead of ad-hoc fields or message text. Every class
 * takes the underlying error as `cause` (the standard ErrorOptions), so logs keep the original.
 *
 * - TransientError: the world may heal (a lost connection): the service reconnects and resumes.
 * - FatalError: retrying cannot help (a broken protocol, a refused query): the run stops.
 * - ConfigError: a FatalError the user fixes (a bad setting, a missing prerequisite): one line
 *   naming the problem and the fix, exit 2.
 *
 * A leaf: imports nothing, so every layer (the pure ones included) can throw these.
 */
export class TransientError extends Error {
  override readonly name: string = "TransientError";
}

export class FatalError extends Error {
  override readonly name: string = "FatalError";
}

export class ConfigError extends FatalError {
  override readonly name: string = "ConfigError";
}

/** A PostgreSQL SQLSTATE or Node socket code, when the error carries one. */
function codeOf(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === "string" ? code : undefined;
}

/** SQLSTATEs (PostgreSQL's Appendix A) the code acts on, by name: tested with hasSqlState, never by message text. */
export const SQLSTATE = {
  /** The slot (or another object) is gone: a dropped slot, or a failover to a server without it. */
  undefinedObject: "42704",
  /** Created meanwhile by someone else (a slot another instance created first). */
  duplicateObject: "42710",
  /** In use: the slot is active for another walsender. */
  objectInUse: "55006",
  /** A statement cancelled, by statement_timeout among others. */
  queryCanceled: "57014",
  /** No operator or function for these argument types (a snapshot filter's operator and column). */
  undefinedFunction: "42883",
  datatypeMismatch: "42804",
  ambiguousFunction: "42725",
} as const;

/** Whether the error, or an error it was caused by (a classified error keeps its cause), carries this SQLSTATE. */
export function hasSqlState(error: unknown, state: string): boolean {
  for (let e: unknown = error, depth = 0; e !== null && e !== undefined && depth < 8; e = (e as { cause?: unknown }).cause, depth++) {
    if (codeOf(e) === state) return true;
  }
  return false;
}

/**
 * The one place that decides whether a database error means the connection is gone (worth a
 * reconnect): no SQLSTATE at all (a socket error: ECONNRESET, ECONNREFUSED, "Connection
 * terminated"), or SQLSTATE class 08 (connection exception) or 57 (operator intervention:
 * administrator shutdown, terminated backend). Anything else the server refused on purpose.
 */
export function isConnectionError(error: unknown): boolean {
  // Node's socket errors carry the failed system call (and an errno code such as ECONNRESET).
  if ((error as { syscall?: unknown } | null)?.syscall !== undefined) return true;
  const code = codeOf(error);
  return code === undefined || /^(08|57)/.test(code);
}

/** Whether retrying may help: a TransientError, or (unclassified) a lost connection. */
export function isTransient(error: unknown): boolean {
  if (error instanceof TransientError) return true;
  if (error instanceof FatalError) return false;
  return isConnectionError(error);
}

/**
 * Gives an error from a database operation its class: transient when the connection is gone,
 * fatal otherwise. `context` says what was being done ("reading the catalog for public.t").
 */
export function classifyDatabaseError(error: unknown, context: string): TransientError | FatalError {
  if (error instanceof TransientError || error instanceof FatalError) return error;
  const message = `${context} failed: ${(error as Error)?.message ?? String(error)}`;
  return isConnectionError(error) ? new TransientError(message, { cause: error }) : new FatalError(message, { cause: error });
}
