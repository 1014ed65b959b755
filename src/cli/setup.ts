import { type Query, withDatabase } from "../source/database.js";
import { ConfigError, RUN_SETTINGS, type SettingSpec, type SettingValues } from "../config.js";
import { quoteIdent, quoteLiteral } from "../source/replication.js";
import { parseTableRef, publicationTables, qualified, type TableRef } from "../source/setup.js";
import { flagsOnlyCommand } from "./help.js";
import { LOCAL_DATA_DIR_SETTING } from "../embedded/local.js";

/** The specs of shared settings by name (one definition of each flag for every command). */
export function settingsNamed(...names: string[]): SettingSpec[] {
  return names.map((name) => {
    const spec = RUN_SETTINGS.find((s) => s.name === name);
    if (!spec) throw new Error(`no setting named ${name}`);
    return spec;
  });
}

export function requireSetting(specs: readonly SettingSpec[], values: SettingValues, name: string): void {
  if (values[name] === undefined) {
    const spec = specs.find((s) => s.name === name)!;
    throw new ConfigError(`setting ${name} is missing: give --${name}${spec.env ? ` or ${spec.env}` : ""}`);
  }
}

export function tablesSetting(values: SettingValues): TableRef[] | undefined {
  try {
    return (values.tables as string[] | undefined)?.map(parseTableRef);
  } catch (error) {
    throw new ConfigError(`setting tables: ${(error as Error).message}`);
  }
}


const ALL_OPERATIONS = "insert, update, delete, truncate";

export interface FixOptions {
  readonly publication: string;
  readonly slot: string;
  readonly tables?: readonly TableRef[];
  readonly replicaIdentityFull: boolean;
  readonly createSlot: boolean;
}

/**
 * The statements that bring the database to what `tera-cdc run` needs, limited to those safe to
 * automate: the publication (created, extended, publishing every operation), REPLICA IDENTITY
 * FULL when asked, the slot when asked (a slot retains WAL from then on). Server settings
 * (wal_level, slots, senders) and role attributes need a superuser's decision and a restart, so
 * they are left to `check`'s fix lines.
 */
export async function plannedFixes(query: Query, options: FixOptions): Promise<string[]> {
  const statements: string[] = [];
  const existing = await publicationTables(query, options.publication);
  const tables = options.tables && options.tables.length > 0 ? options.tables : existing;
  if (!tables) {
    throw new ConfigError(`publication "${options.publication}" does not exist and no tables are given: give --tables t1,t2 to create it`);
  }
  if (options.replicaIdentityFull) {
    for (const ref of tables) {
      const row = (
        await query(
          "SELECT c.relreplident AS identity FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relname = $2",
          [ref.schema, ref.table],
        )
      ).rows[0];
      if (row && row.identity !== "f") statements.push(`ALTER TABLE ${qualified(ref)} REPLICA IDENTITY FULL`);
    }
  }
  const publication = quoteIdent(options.publication);
  if (!existing) {
    statements.push(`CREATE PUBLICATION ${publication} FOR TABLE ${tables.map(qualified).join(", ")}`);
  } else {
    const missing = tables.filter((r) => !existing.some((e) => e.schema === r.schema && e.table === r.table));
    if (missing.length > 0) statements.push(`ALTER PUBLICATION ${publication} ADD TABLE ${missing.map(qualified).join(", ")}`);
    const ops = (await query("SELECT pubinsert AND pubupdate AND pubdelete AND pubtruncate AS all FROM pg_publication WHERE pubname = $1", [options.publication])).rows[0];
    if (ops && !ops.all) statements.push(`ALTER PUBLICATION ${publication} SET (publish = '${ALL_OPERATIONS}')`);
  }
  if (options.createSlot) {
    const slot = await query("SELECT 1 FROM pg_replication_slots WHERE slot_name = $1", [options.slot]);
    if (slot.rowCount === 0) statements.push(`SELECT pg_create_logical_replication_slot(${quoteLiteral(options.slot)}, 'pgoutput')`);
  }
  return statements;
}

export const SETUP_SETTINGS: readonly SettingSpec[] = [
  ...settingsNamed("database-url", "tables", "publication", "slot"),
  { name: "replica-identity-full", kind: { type: "bool" }, default: false, help: "also set REPLICA IDENTITY FULL on the tables (deletes carry every column; unchanged large values are published)" },
  { name: "create-slot", kind: { type: "bool" }, default: false, help: "also create the replication slot now (it retains WAL from then on; run creates it otherwise)" },
  { name: "dry-run", kind: { type: "bool" }, default: false, help: "print the statements without running them" },
  LOCAL_DATA_DIR_SETTING,
];

const USAGE = `Usage: tera-cdc setup --database-url URL [--tables t1,t2] [--replica-identity-full] [--create-slot] [--dry-run]

Applies the fixes that are safe to automate, printing each statement: creates the publication for
--tables (or adds the missing tables, or makes it publish every operation), and when asked sets
REPLICA IDENTITY FULL and creates the slot. Run \`tera-cdc check\` for everything else.`;
const EXAMPLES = [
  "tera-cdc setup --database-url postgres://admin@db/opentera --tables t_devices,t_users",
  "tera-cdc setup --database-url postgres://admin@db/opentera --tables t_devices --replica-identity-full --dry-run",
];

/** Plans and (unless dry-run) applies the fixes, writing each statement to `out`. */
export async function applyFixes(query: Query, options: FixOptions, dryRun: boolean, out: (line: string) => void): Promise<number> {
  const statements = await plannedFixes(query, options);
  if (statements.length === 0) out("nothing to do: the publication already holds the tables");
  for (const sql of statements) {
    if (!dryRun) await query(sql);
    out(`${dryRun ? "would run" : "applied"}: ${sql};`);
  }
  return statements.length;
}

export function fixOptions(values: SettingValues): FixOptions {
  return {
    publication: values.publication as string,
    slot: values.slot as string,
    tables: tablesSetting(values),
    replicaIdentityFull: values["replica-identity-full"] === true,
    createSlot: values["create-slot"] === true,
  };
}

export async function setupCommand(argv: string[]): Promise<number> {
  const v = flagsOnlyCommand("setup", SETUP_SETTINGS, argv, { usage: USAGE, examples: EXAMPLES });
  if (!v) return 0;
  requireSetting(SETUP_SETTINGS, v, "database-url");
  const options = fixOptions(v);
  await withDatabase(v["database-url"] as string, "tera-cdc setup", (query) =>
    applyFixes(query, options, v["dry-run"] === true, (line) => process.stdout.write(`${line}\n`)),
  );
  return 0;
}
