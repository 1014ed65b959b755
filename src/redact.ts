/**
 * Secrets out of text that is logged or shown (pure, no logger): apart from src/ops/log.ts so
 * that the library entry can redact URLs in its errors without loading pino.
 */

/** A URL with its password (and any password-like query parameter) replaced, for logs and errors. */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = "redacted";
    for (const name of [...parsed.searchParams.keys()]) {
      if (/pass|secret|token|key/i.test(name)) parsed.searchParams.set(name, "redacted");
    }
    return parsed.toString();
  } catch {
    return url.replace(/\/\/([^:/@]*):[^@]*@/, "//$1:redacted@");
  }
}
