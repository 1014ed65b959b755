import pino from "pino";

export type Logger = pino.Logger;
export type LogLevel = "trace" | "debug" | "info" | "warn" | "error" | "fatal" | "silent";

/**
 * Structured logs on stderr (stdout stays free for commands that print data, like `tail`).
 * Secrets are redacted by key name as a second line of defence: URLs are passed through
 * `redactUrl` before they are logged.
 */
export function createLogger(level: LogLevel = "info"): Logger {
  return pino(
    {
      level,
      base: undefined,
      redact: { paths: ["password", "*.password", "secret", "*.secret", "token", "*.token", "key", "*.key"], censor: "[redacted]" },
    },
    pino.destination({ fd: 2, sync: true }),
  );
}

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
