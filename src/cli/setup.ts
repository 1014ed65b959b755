import { withDatabase } from "../source/database.js";
import { ConfigError, type SettingSpec } from "../config.js";
import { applyFixes, type FixOptions, preparationScript, preparationSql } from "../source/preparation.js";
import { parseTableRef, type TableRef } from "../source/table-ref.js";
import { flagsOnlyCommand, required } from "./help.js";
import { settingsNamed } from "./run-settings.js";
import { LOCAL_DATA_DIR_SETTING } from "../embedded/local.js";

/** The `tables` setting as table references (a ConfigError naming the bad one). */
export function tablesSetting(values: { readonly tables?: readonly string[] | undefined }): TableRef[] | undefined {
  try {
    return values.tables?.map(parseTableRef);
  } catch (error) {
    throw new ConfigError(`setting tables: ${(error as Error).message}`);
  }
}

export const SETUP_SETTINGS = [
  ...settingsNamed("database-url", "tables", "publication", "slot"),
  { name: "replica-identity-full", kind: { type: "bool" }, default: false, help: "also set REPLICA IDENTITY FULL on the tables (deletes carry every column; unchanged large values are published)" },
  { name: "create-slot", kind: { type: "bool" }, default: false, help: "also create the replication slot now (it retains WAL from then on; run creates it otherwise)" },
  { name: "dry-run", kind: { type: "bool" }, default: false, help: "print the statements without running them" },
  { name: "print-sql", kind: { type: "bool" }, default: false, help: "print the whole preparation for --tables (role, grants, snapshot schema, replica identity, publication) as SQL for a superuser; needs no database" },
  { name: "apply", kind: { type: "bool" }, default: false, help: "run that preparation on --database-url (as a superuser), printing each statement" },
  { name: "role", env: "TERA_CDC_SETUP_ROLE", kind: { type: "string" }, default: "tera_cdc", help: "with --print-sql or --apply: the role tera-cdc will connect as" },
  LOCAL_DATA_DIR_SETTING,
] as const satisfies readonly SettingSpec[];

const USAGE = `Usage: tera-cdc setup --database-url URL [--tables t1,t2] [--replica-identity-full] [--create-slot] [--dry-run]
       tera-cdc setup --tables t1,t2 --print-sql [--role tera_cdc]        (the whole preparation, as SQL)
       tera-cdc setup --tables t1,t2 --apply --database-url URL [--role tera_cdc]

Applies the fixes that are safe to automate, printing each statement: creates the publication for
--tables (or adds the missing tables, or makes it publish every operation), and when asked sets
REPLICA IDENTITY FULL and creates the slot. Run \`tera-cdc check\` for everything else.`;
const EXAMPLES = [
  "tera-cdc setup --database-url postgres://admin@db/opentera --tables t_devices,t_users",
  "tera-cdc setup --database-url postgres://admin@db/opentera --tables t_devices --replica-identity-full --dry-run",
  "tera-cdc setup --tables public.orders,public.customers --print-sql > prepare.sql   (then: psql postgres://postgres@db/app -f prepare.sql)",
  "tera-cdc setup --tables orders,customers --apply --database-url postgres://postgres@db/app",
];


/** The settings fixOptions reads (setup's and check's). */
export interface FixSettings {
  readonly publication: string;
  readonly slot: string;
  readonly tables?: readonly string[] | undefined;
  readonly "replica-identity-full": boolean;
  readonly "create-slot"?: boolean;
}

export function fixOptions(values: FixSettings): FixOptions {
  return {
    publication: values.publication,
    slot: values.slot,
    tables: tablesSetting(values),
    replicaIdentityFull: values["replica-identity-full"],
    createSlot: values["create-slot"] === true,
  };
}

export async function setupCommand(argv: string[]): Promise<number> {
  const v = flagsOnlyCommand("setup", SETUP_SETTINGS, argv, { usage: USAGE, examples: EXAMPLES });
  if (!v) return 0;
  if (v["print-sql"] || v.apply) {
    const tables = tablesSetting(v);
    if (!tables || tables.length === 0) throw new ConfigError("setting tables is missing: --print-sql and --apply prepare the tables given with --tables t1,t2");
    const preparation = { tables, role: v.role, publication: v.publication, replicaIdentityFull: v["replica-identity-full"] };
    if (v["print-sql"]) {
      process.stdout.write(preparationScript(preparation));
      return 0;
    }
    await withDatabase(required(SETUP_SETTINGS, v, "database-url"), "tera-cdc setup", async (query) => {
      const wal: string = (await query("SELECT current_setting('wal_level') AS level")).rows[0].level;
      for (const step of preparationSql(preparation)) {
        await query(step.sql);
        process.stdout.write(`applied: ${step.sql};\n`);
      }
      if (wal !== "logical") {
        process.stdout.write(`wal_level is ${wal}: run ALTER SYSTEM SET wal_level = logical; then restart PostgreSQL\n`);
      }
    });
    return 0;
  }
  const databaseUrl = required(SETUP_SETTINGS, v, "database-url");
  const options = fixOptions(v);
  await withDatabase(databaseUrl, "tera-cdc setup", (query) =>
    applyFixes(query, options, v["dry-run"], (line) => process.stdout.write(`${line}\n`)),
  );
  return 0;
}
