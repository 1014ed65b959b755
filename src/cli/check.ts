import type { SettingSpec } from "../config.js";
import { flagsOnlyCommand, required } from "./help.js";
import { settingsNamed } from "./run-settings.js";
import { withDatabase } from "../source/database.js";
import { LOCAL_DATA_DIR_SETTING } from "../embedded/local.js";
import { fixOptions, tablesSetting } from "./setup.js";
import { applyFixes } from "../source/preparation.js";
import { formatChecks, runChecks } from "../service/checks.js";

export const CHECK_SETTINGS = [
  ...settingsNamed("database-url", "tables", "publication", "slot"),
  { name: "json", kind: { type: "bool" }, default: false, help: "print the results as one JSON array" },
  { name: "allow-warnings", kind: { type: "bool" }, default: false, help: "exit 0 when nothing failed, even with warnings" },
  { name: "apply", kind: { type: "bool" }, default: false, help: "first apply the safe fixes, as tera-cdc setup does, printing each statement" },
  { name: "replica-identity-full", kind: { type: "bool" }, default: false, help: "with --apply: also set REPLICA IDENTITY FULL on the tables" },
  LOCAL_DATA_DIR_SETTING,
] as const satisfies readonly SettingSpec[];

const USAGE = `Usage: tera-cdc check --database-url URL [--tables t1,t2] [--publication P] [--slot S] [--apply]

Checks every prerequisite of tera-cdc run and prints PASS, WARN or FAIL for each, with the SQL or
configuration line that fixes each FAIL and WARN (INFO needs no fix: the slot held by a running
tera-cdc is the healthy state). Exit code 0 when nothing failed or warned (with --allow-warnings:
when nothing failed), 1 otherwise or when the database is unreachable, 2 on bad flags.`;
const EXAMPLES = [
  "tera-cdc check --database-url postgres://cdc@db/opentera --tables t_devices,t_users",
  "tera-cdc check --database-url postgres://cdc@db/opentera --publication tera_cdc --json",
  "tera-cdc check --database-url postgres://admin@db/opentera --tables t_devices --apply",
];

export async function checkCommand(argv: string[]): Promise<number> {
  const v = flagsOnlyCommand("check", CHECK_SETTINGS, argv, { usage: USAGE, examples: EXAMPLES });
  if (!v) return 0;
  const databaseUrl = required(CHECK_SETTINGS, v, "database-url");
  const options = { publication: v.publication, slot: v.slot, tables: tablesSetting(v) };
  const results = await withDatabase(databaseUrl, "tera-cdc check", async (query) => {
    if (v.apply) {
      await applyFixes(query, { ...fixOptions(v), createSlot: false }, false, (line) => process.stdout.write(`${line}\n`));
    }
    return runChecks(query, options);
  });
  process.stdout.write(v.json ? `${JSON.stringify(results, null, 2)}\n` : formatChecks(results));
  const failed = results.some((r) => r.verdict === "FAIL" || (!v["allow-warnings"] && r.verdict === "WARN"));
  return failed ? 1 : 0;
}
