import { ConfigError } from "../config.js";
import { runCommand } from "./run.js";
import { auditCommand } from "./audit.js";
import { snapshotCommand } from "./snapshot.js";
import { gatewayCommand } from "./gateway.js";
import { checkCommand } from "./check.js";
import { setupCommand } from "./setup.js";
import { statusCommand } from "./status.js";
import { tailCommand } from "./tail.js";

/** A command: takes its arguments, returns the exit code. */
export type Command = (argv: string[]) => Promise<number>;

const COMMANDS: Record<string, { run: Command; summary: string }> = {
  run: { run: runCommand, summary: "stream committed changes from PostgreSQL to MQTT until stopped" },
  gateway: { run: gatewayCommand, summary: "serve the change events to browsers over authenticated WebSockets, with a live page" },
  tail: { run: tailCommand, summary: "print the events on the broker, decoded, one line each (or JSON Lines)" },
  check: { run: checkCommand, summary: "check every database prerequisite; prints the fix for each failure" },
  status: { run: statusCommand, summary: "the slot (active, confirmed LSN, retained WAL), the publication, live figures" },
  setup: { run: setupCommand, summary: "apply the safe fixes (publication, replica identity), printing each statement" },
  snapshot: { run: snapshotCommand, summary: "ask a running tera-cdc (RPC) to snapshot a model into the stream, with progress" },
  audit: { run: auditCommand, summary: "append every change to an append-only PostgreSQL audit table, exactly once" },
};

export const USAGE = `tera-cdc: PostgreSQL changes as OpenTera DatabaseEvents on MQTT

Usage: tera-cdc <command> [flags]   (tera-cdc <command> --help for its flags)

Commands:
${Object.entries(COMMANDS)
  .map(([name, c]) => `  ${name.padEnd(10)} ${c.summary}`)
  .join("\n")}
`;

/** Exit codes: 0 done, 1 runtime failure, 2 bad configuration or usage. */
async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === "--help" || name === "-h" || name === "help") {
    process.stdout.write(USAGE);
    return name ? 0 : 2;
  }
  const command = COMMANDS[name];
  if (!command) {
    process.stderr.write(`tera-cdc: unknown command "${name}": expected one of ${Object.keys(COMMANDS).join(", ")}\n`);
    return 2;
  }
  try {
    return await command.run(rest);
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
