import { readFileSync } from "node:fs";
import { ConfigError } from "../config.js";
/** A command: takes its arguments, returns the exit code. */
export type Command = (argv: string[]) => Promise<number>;

/**
 * Each command's module is loaded only when it runs: `run` should not carry the gateway's
 * bundler or the audit sink in its memory.
 */
const COMMANDS: Record<string, { load: () => Promise<Command>; summary: string }> = {
  run: { load: async () => (await import("./run.js")).runCommand, summary: "stream committed changes from PostgreSQL to MQTT until stopped" },
  gateway: { load: async () => (await import("./gateway.js")).gatewayCommand, summary: "serve the change events to browsers over authenticated WebSockets, with a live page" },
  tail: { load: async () => (await import("./tail.js")).tailCommand, summary: "print the events on the broker, decoded, one line each (or JSON Lines)" },
  check: { load: async () => (await import("./check.js")).checkCommand, summary: "check every database prerequisite; prints the fix for each failure" },
  status: { load: async () => (await import("./status.js")).statusCommand, summary: "the slot (active, confirmed LSN, retained WAL), the publication, live figures" },
  setup: { load: async () => (await import("./setup.js")).setupCommand, summary: "apply the safe fixes (publication, replica identity), printing each statement" },
  snapshot: { load: async () => (await import("./snapshot.js")).snapshotCommand, summary: "ask a running tera-cdc (RPC) to snapshot a model into the stream, with progress" },
  audit: { load: async () => (await import("./audit.js")).auditCommand, summary: "append every change to an append-only PostgreSQL audit table, exactly once" },
  token: { load: async () => (await import("./token.js")).tokenCommand, summary: "print a JWT for the gateway from claims, signed with its secret" },
};

export const USAGE = `tera-cdc: PostgreSQL changes as OpenTera DatabaseEvents on MQTT

Usage: tera-cdc <command> [flags]   (tera-cdc <command> --help for its flags; tera-cdc --version)

Commands:
${Object.entries(COMMANDS)
  .map(([name, c]) => `  ${name.padEnd(10)} ${c.summary}`)
  .join("\n")}
`;

/** The version in the package's package.json (dist/cli/main.js sits two folders below it). */
function packageVersion(): string {
  const manifest: unknown = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8"));
  const version = manifest !== null && typeof manifest === "object" && "version" in manifest ? manifest.version : undefined;
  return typeof version === "string" ? version : "unknown";
}

/** Exit codes: 0 done, 1 runtime failure, 2 bad configuration or usage. */
async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === "--help" || name === "-h" || name === "help") {
    process.stdout.write(USAGE);
    return name ? 0 : 2;
  }
  if (name === "--version" || name === "-v" || name === "version") {
    process.stdout.write(`tera-cdc ${packageVersion()}\n`);
    return 0;
  }
  const command = COMMANDS[name];
  if (!command) {
    process.stderr.write(`tera-cdc: unknown command "${name}": expected one of ${Object.keys(COMMANDS).join(", ")}\n`);
    return 2;
  }
  try {
    return await (await command.load())(rest);
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`tera-cdc ${name}: ${error.message}\n`);
      return 2;
    }
    process.stderr.write(`tera-cdc ${name}: ${(error as Error).message.split("\n")[0]}\n`);
    return 1;
  }
}

process.exit(await main(process.argv.slice(2)));
