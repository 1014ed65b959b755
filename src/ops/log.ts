import { writeSync } from "node:fs";
import pino from "pino";

export { redactUrl } from "../redact.js";

export type Logger = pino.Logger;
export type LogLevel = "trace" | "debug" | "info" | "warn" | "error" | "fatal" | "silent";
/** json: one JSON object a line; pretty: a line for humans; auto: pretty when stderr is a terminal. */
export type LogFormat = "auto" | "json" | "pretty";

export interface LoggerOptions {
  readonly format?: LogFormat;
  /** Also receives every JSON log line (for --log-to-mqtt); must not throw or log. */
  readonly tee?: (jsonLine: string) => void;
  /** Where lines go; stderr by default. */
  readonly fd?: number;
}

const REDACT = { paths: ["password", "*.password", "secret", "*.secret", "token", "*.token", "key", "*.key"], censor: "[redacted]" };

/**
 * Structured logs on stderr (stdout stays free for commands that print data, like `tail`).
 * Secrets are redacted by key name as a second line of defence: URLs are passed through
 * `redactUrl` before they are logged.
 */
export function createLogger(level: LogLevel = "info", options: LoggerOptions = {}): Logger {
  const fd = options.fd ?? 2;
  // TERA_CDC_LOG_FORMAT (json, pretty, auto) serves every command without a flag of each.
  const format = options.format ?? (process.env.TERA_CDC_LOG_FORMAT as LogFormat | undefined) ?? "auto";
  const pretty = format === "pretty" || (format !== "json" && process.stderr.isTTY === true && fd === 2);
  const opts = { level, base: undefined, redact: REDACT };
  if (!pretty && !options.tee) return pino(opts, pino.destination({ fd, sync: true }));
  const colour = pretty && process.stderr.isTTY === true && !process.env.NO_COLOR;
  const tee = options.tee;
  // Synchronous writes, like the JSON destination: a log line is out before a crash or exit.
  return pino(opts, {
    write(line: string) {
      writeSync(fd, pretty ? formatPretty(line, colour) : line);
      tee?.(line);
    },
  });
}

const LEVEL_NAMES: Record<number, string> = { 10: "TRACE", 20: "DEBUG", 30: "INFO", 40: "WARN", 50: "ERROR", 60: "FATAL" };
const LEVEL_COLOURS: Record<number, string> = { 10: "90", 20: "36", 30: "32", 40: "33", 50: "31", 60: "35" };

/** One pino JSON line as `12:00:01.234 INFO  message key=value ...` (pure). */
export function formatPretty(jsonLine: string, colour = false): string {
  let entry: Record<string, unknown>;
  try {
    entry = JSON.parse(jsonLine) as Record<string, unknown>;
  } catch {
    return jsonLine.endsWith("\n") ? jsonLine : `${jsonLine}\n`;
  }
  const { level, time, msg, ...rest } = entry;
  const when = typeof time === "number" ? new Date(time).toISOString().slice(11, 23) : "";
  const levelNumber = typeof level === "number" ? level : 30;
  let name = (LEVEL_NAMES[levelNumber] ?? String(level)).padEnd(5);
  if (colour) name = `\u001b[${LEVEL_COLOURS[levelNumber] ?? "0"}m${name}\u001b[0m`;
  const fields = Object.entries(rest)
    .map(([k, v]) => `${k}=${typeof v === "string" && !/[\s"=]/.test(v) && v !== "" ? v : JSON.stringify(v)}`)
    .join(" ");
  return `${when} ${name} ${msg ?? ""}${fields ? ` ${fields}` : ""}\n`;
}
