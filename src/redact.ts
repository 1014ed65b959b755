/**
 * Secrets out of text that is logged or shown (pure, no logger): apart from src/ops/log.ts so
 * that the library entry can redact URLs in its errors without loading pino.
 */

/**
 * The URLs of a comma-separated list (`mqtt://a:1883,mqtt://b:1883`): split where a comma is
 * followed by a scheme, so a comma inside a password or a libpq host list (`postgres://u@a,b/db`)
 * does not split. One URL gives itself.
 */
export function splitUrlList(text: string): string[] {
  return text.split(/,\s*(?=[a-zA-Z][a-zA-Z0-9+.-]*:\/\/)/);
}

/** A URL (or each URL of a list) with its password and any password-like query parameter replaced, for logs and errors. */
export function redactUrl(url: string): string {
  const list = splitUrlList(url);
  if (list.length > 1) return list.map(redactOne).join(",");
  return redactOne(url);
}

function redactOne(url: string): string {
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
