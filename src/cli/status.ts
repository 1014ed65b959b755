import type { SettingSpec } from "../config.js";
import { formatStatus, readHealth, readStatus, type StatusReport } from "../ops/status.js";
import { flagsOnlyCommand, required } from "./help.js";
import { withDatabase } from "../source/database.js";
import { settingsNamed } from "./run-settings.js";
import { LOCAL_DATA_DIR_SETTING } from "../embedded/local.js";

export const STATUS_SETTINGS = [
  ...settingsNamed("database-url", "slot", "publication", "health-port"),
  { name: "health-url", env: "TERA_CDC_HEALTH_URL", kind: { type: "url", schemes: ["http", "https"] }, help: "health URL of a running tera-cdc (http://host:port), for its live figures" },
  { name: "json", kind: { type: "bool" }, default: false, help: "print the report as JSON" },
  LOCAL_DATA_DIR_SETTING,
] as const satisfies readonly SettingSpec[];

const USAGE = `Usage: tera-cdc status --database-url URL [--slot S] [--publication P] [--health-url URL | --health-port N]

Shows the replication slot (active, PID, confirmed LSN, WAL retained for it), the publication's
tables and, given a running tera-cdc's health URL (or its health port on this machine), its live
figures. Exit code 0, or 1 when the slot does not exist or the health URL does not answer.`;
const EXAMPLES = [
  "tera-cdc status --database-url postgres://cdc@db/opentera",
  "tera-cdc status --database-url postgres://cdc@db/opentera --slot tera_cdc --health-url http://cdc-host:8080",
  "tera-cdc status --database-url postgres://cdc@db/opentera --health-port 8080 --json",
];

export async function statusCommand(argv: string[]): Promise<number> {
  const v = flagsOnlyCommand("status", STATUS_SETTINGS, argv, { usage: USAGE, examples: EXAMPLES });
  if (!v) return 0;
  const databaseUrl = required(STATUS_SETTINGS, v, "database-url");
  const report: { -readonly [K in keyof StatusReport]: StatusReport[K] } = await withDatabase(databaseUrl, "tera-cdc status", (query) => readStatus(query, v.slot, v.publication));
  const healthUrl = v["health-url"] ?? (v["health-port"] !== undefined ? `http://127.0.0.1:${v["health-port"]}` : undefined);
  if (healthUrl) report.health = await readHealth(healthUrl);
  process.stdout.write(v.json ? `${JSON.stringify(report, null, 2)}\n` : formatStatus(report));
  return report.slot === null || (report.health !== undefined && report.health.body === undefined) ? 1 : 0;
}
