import { randomBytes } from "node:crypto";

/**
 * An unexpected failure as a remote caller may see it: PostgreSQL's SQLSTATE (or "internal") and
 * a reference, never the error's text, which can quote values the caller may not read (issue 14:
 * a failed cast carried a password hash back). The whole message goes to the log line that
 * carries the same reference.
 */
export interface PublicFailure {
  /** SQLSTATE such as 57014, or "internal". */
  readonly code: string;
  /** Eight hex digits, in the reply and in the log line. */
  readonly reference: string;
  /** The first line of the error's message: for the log only. */
  readonly logged: string;
}

export function publicFailure(error: unknown): PublicFailure {
  const sqlState = (error as { code?: unknown } | null)?.code;
  const code = typeof sqlState === "string" && /^[0-9A-Z]{5}$/.test(sqlState) ? sqlState : "internal";
  const message = error instanceof Error ? error.message : String(error);
  return { code, reference: randomBytes(4).toString("hex"), logged: message.split("\n")[0]! };
}

/** `(57014, reference 1a2b3c4d in tera-cdc's log)` */
export function failureTag(failure: PublicFailure): string {
  return `(${failure.code}, reference ${failure.reference} in tera-cdc's log)`;
}
