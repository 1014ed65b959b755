/**
 * Every prerequisite of `tera-cdc run` checked and reported as PASS, INFO, WARN or FAIL with the
 * line that fixes it (what `tera-cdc check` prints); the checks `run` itself makes are reused.
 */
import { quoteIdent, quoteLiteral } from "../source/replication.js";
import { checkReplicationRole, checkWalLevel, PrerequisiteError } from "../source/prerequisites.js";
import { describeTable, publicationTables } from "../source/published-tables.js";
import { qualified, type TableRef } from "../source/table-ref.js";
import { snapshotStatePrivileges } from "../snapshot/store.js";
import type { Query } from "../source/database.js";

/** INFO: a state worth knowing that needs no fix (the slot held by a running tera-cdc). */
export type Verdict = "PASS" | "INFO" | "WARN" | "FAIL";

export interface CheckResult {
  readonly verdict: Verdict;
  /** What was checked, e.g. "wal_level" or "table public.t_devices". */
  readonly name: string;
  readonly detail: string;
  /** The SQL or configuration line that fixes a FAIL or WARN. */
  readonly fix?: string;
}

export interface CheckOptions {
  readonly publication: string;
  readonly slot: string;
  readonly tables?: readonly TableRef[];
}

/**
 * Splits a PrerequisiteError message, "problem: fix", into its two halves (the fix is after the
 * last ": " and starts with "run " when it is a statement). Pure.
 */
export function splitProblemFix(message: string): { problem: string; fix?: string } {
  const at = message.lastIndexOf(": ");
  if (at < 0) return { problem: message };
  return { problem: message.slice(0, at), fix: message.slice(at + 2).replace(/^run /, "") };
}

function fromError(name: string, error: unknown): CheckResult {
  if (!(error instanceof PrerequisiteError)) throw error;
  const { problem, fix } = splitProblemFix(error.message);
  return { verdict: "FAIL", name, detail: problem, fix };
}

async function setting(query: Query, name: string): Promise<number> {
  return Number((await query("SELECT current_setting($1) AS value", [name])).rows[0].value);
}

/**
 * Every prerequisite of `tera-cdc run`, in the order an operator fixes them. Reuses the checks
 * `run` itself makes (src/source/setup.ts), so the two never disagree, and adds the ones `run`
 * cannot know about until too late (headroom, privileges, slot state).
 */
export async function runChecks(query: Query, options: CheckOptions): Promise<CheckResult[]> {
  const results: CheckResult[] = [];
  const add = (result: CheckResult) => results.push(result);

  try {
    await checkWalLevel(query);
    add({ verdict: "PASS", name: "wal_level", detail: "logical" });
  } catch (error) {
    add(fromError("wal_level", error));
  }

  const slot = (
    await query(
      `SELECT s.plugin, s.slot_type, s.database, s.active, s.active_pid, s.wal_status, current_database() AS here,
              (SELECT r.application_name FROM pg_stat_replication r WHERE r.pid = s.active_pid) AS holder
         FROM pg_replication_slots s WHERE s.slot_name = $1`,
      [options.slot],
    )
  ).rows[0] as { plugin: string; slot_type: string; database: string; active: boolean; active_pid: number | null; wal_status: string | null; here: string; holder: string | null } | undefined;

  const maxSlots = await setting(query, "max_replication_slots");
  const usedSlots = Number((await query("SELECT count(*) AS n FROM pg_replication_slots")).rows[0].n);
  const neededSlots = usedSlots + (slot ? 0 : 1);
  add(
    neededSlots <= maxSlots
      ? { verdict: "PASS", name: "max_replication_slots", detail: `${usedSlots} of ${maxSlots} in use${slot ? " (including this slot)" : ", one more needed for this slot"}` }
      : {
          verdict: "FAIL",
          name: "max_replication_slots",
          detail: `${usedSlots} of ${maxSlots} in use, no room for slot ${options.slot}`,
          fix: `ALTER SYSTEM SET max_replication_slots = ${Math.max(10, neededSlots + 2)}; then restart PostgreSQL (or drop an unused slot with SELECT pg_drop_replication_slot('name');)`,
        },
  );

  const maxSenders = await setting(query, "max_wal_senders");
  const usedSenders = Number((await query("SELECT count(*) AS n FROM pg_stat_activity WHERE backend_type = 'walsender'")).rows[0].n);
  add(
    usedSenders < maxSenders
      ? { verdict: "PASS", name: "max_wal_senders", detail: `${usedSenders} of ${maxSenders} in use` }
      : {
          verdict: "FAIL",
          name: "max_wal_senders",
          detail: `${usedSenders} of ${maxSenders} in use, none left for tera-cdc's replication connection`,
          fix: `ALTER SYSTEM SET max_wal_senders = ${Math.max(10, usedSenders + 2)}; then restart PostgreSQL`,
        },
  );

  try {
    await checkReplicationRole(query);
    const role = (await query("SELECT current_user AS name, rolsuper FROM pg_roles WHERE rolname = current_user")).rows[0];
    add({ verdict: "PASS", name: "role", detail: `${role.name} ${role.rolsuper ? "is a superuser" : "has REPLICATION"}` });
  } catch (error) {
    add(fromError("role", error));
  }

  // Snapshots and RPC snapshot requests keep their state in tera_cdc.snapshots.
  const snapshotState = await snapshotStatePrivileges(query);
  add(snapshotState.ok ? { verdict: "PASS", name: "snapshot state", detail: snapshotState.detail } : { verdict: "FAIL", name: "snapshot state", detail: snapshotState.detail, fix: snapshotState.fix });

  const existing = await publicationTables(query, options.publication);
  const tables = options.tables && options.tables.length > 0 ? options.tables : existing ?? [];
  const publication = quoteIdent(options.publication);
  if (!existing) {
    const list = tables.length > 0 ? tables.map(qualified).join(", ") : "table1, table2";
    add({
      verdict: "FAIL",
      name: "publication",
      detail: `publication "${options.publication}" does not exist${tables.length === 0 ? " and no --tables are given" : ""}`,
      fix: `CREATE PUBLICATION ${publication} FOR TABLE ${list};  (or: tera-cdc setup${tables.length > 0 ? ` --tables ${tables.map((t) => `${t.schema}.${t.table}`).join(",")}` : " --tables ..."})`,
    });
    if (tables.length > 0) {
      // Creating a publication FOR TABLE takes CREATE on the database and owning every table.
      const notOwned: string[] = [];
      for (const ref of tables) {
        const owned = (
          await query(
            `SELECT pg_has_role(c.relowner, 'USAGE') AS ok FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relname = $2`,
            [ref.schema, ref.table],
          )
        ).rows[0];
        if (owned && !owned.ok) notOwned.push(qualified(ref));
      }
      const canCreate = (await query("SELECT has_database_privilege(current_database(), 'CREATE') AS ok, current_database() AS db, current_user AS me")).rows[0];
      if (!canCreate.ok || notOwned.length > 0) {
        add({
          verdict: "FAIL",
          name: "privileges",
          detail: `role ${canCreate.me} cannot create the publication${!canCreate.ok ? " (no CREATE on the database)" : ""}${notOwned.length > 0 ? ` (does not own ${notOwned.join(", ")})` : ""}`,
          fix: !canCreate.ok
            ? `GRANT CREATE ON DATABASE ${quoteIdent(canCreate.db)} TO ${quoteIdent(canCreate.me)};  or create the publication as the tables' owner`
            : `create the publication as the tables' owner: CREATE PUBLICATION ${publication} FOR TABLE ${list};`,
        });
      }
    }
  } else {
    const missing = tables.filter((r) => !existing.some((e) => e.schema === r.schema && e.table === r.table));
    const extra = existing.filter((e) => !tables.some((r) => e.schema === r.schema && e.table === r.table));
    if (missing.length > 0) {
      add({
        verdict: "FAIL",
        name: "publication",
        detail: `publication "${options.publication}" lacks ${missing.map((t) => `${t.schema}.${t.table}`).join(", ")}`,
        fix: `ALTER PUBLICATION ${publication} ADD TABLE ${missing.map(qualified).join(", ")};`,
      });
    } else {
      add({ verdict: "PASS", name: "publication", detail: `"${options.publication}" holds ${existing.length === 0 ? "no tables" : existing.map((t) => `${t.schema}.${t.table}`).join(", ")}` });
    }
    if (extra.length > 0) {
      add({
        verdict: "WARN",
        name: "publication",
        detail: `publication "${options.publication}" also holds ${extra.map((t) => `${t.schema}.${t.table}`).join(", ")}, whose changes are published too`,
        fix: `ALTER PUBLICATION ${publication} DROP TABLE ${extra.map(qualified).join(", ")};`,
      });
    }
    const ops = (await query("SELECT pubinsert, pubupdate, pubdelete, pubtruncate FROM pg_publication WHERE pubname = $1", [options.publication])).rows[0];
    const skipped = ["insert", "update", "delete", "truncate"].filter((op) => !ops[`pub${op}`]);
    if (skipped.length > 0) {
      add({
        verdict: "WARN",
        name: "publication",
        detail: `publication "${options.publication}" does not publish ${skipped.join(", ")}`,
        fix: `ALTER PUBLICATION ${publication} SET (publish = 'insert, update, delete, truncate');`,
      });
    }
  }

  for (const ref of tables) {
    const name = `table ${ref.schema}.${ref.table}`;
    let table;
    try {
      table = await describeTable(query, ref);
    } catch (error) {
      add(fromError(name, error));
      continue;
    }
    const identity = table.relation.replicaIdentity;
    const key =
      identity === "f" ? "REPLICA IDENTITY FULL" : identity === "i" ? "REPLICA IDENTITY USING INDEX" : `primary key (${table.primaryKey.join(", ")})`;
    add({ verdict: "PASS", name, detail: `${key}${table.primaryKey.length === 0 ? " (no primary key)" : ""}` });
    if (identity !== "f" && table.toastable.length > 0) {
      add({
        verdict: "WARN",
        name,
        detail: `TOASTable columns without REPLICA IDENTITY FULL (${table.toastable.join(", ")}): an UPDATE that leaves a large value unchanged omits it`,
        fix: `ALTER TABLE ${qualified(ref)} REPLICA IDENTITY FULL;`,
      });
    }
  }

  // Snapshots (and the snapshot RPC) read each table with SELECT, checked above, and mark chunk
  // boundaries in the WAL with pg_logical_emit_message (PUBLIC may run it unless a hardened database revoked it).
  const emit = (await query("SELECT has_function_privilege('pg_logical_emit_message(boolean, text, text)', 'EXECUTE') AS ok, current_user AS me")).rows[0];
  add(
    emit.ok
      ? { verdict: "PASS", name: "snapshots", detail: "may write snapshot watermarks (EXECUTE on pg_logical_emit_message) and read the tables" }
      : {
          verdict: "WARN",
          name: "snapshots",
          detail: `role ${emit.me} cannot write snapshot watermarks: snapshots (--snapshot initial, the snapshot RPC) would fail; streaming is unaffected`,
          fix: `GRANT EXECUTE ON FUNCTION pg_logical_emit_message(boolean, text, text) TO ${quoteIdent(emit.me)};`,
        },
  );

  const slotName = `slot ${options.slot}`;
  if (!slot) {
    add({ verdict: "PASS", name: slotName, detail: "does not exist yet: tera-cdc run creates it (or tera-cdc setup --create-slot)" });
  } else if (slot.slot_type !== "logical" || slot.plugin !== "pgoutput") {
    add({
      verdict: "FAIL",
      name: slotName,
      detail: `is a ${slot.slot_type} slot with plugin ${slot.plugin ?? "none"}; tera-cdc needs a logical pgoutput slot`,
      fix: `SELECT pg_drop_replication_slot(${quoteLiteral(options.slot)});  (or choose another --slot)`,
    });
  } else if (slot.database !== slot.here) {
    add({ verdict: "FAIL", name: slotName, detail: `belongs to database ${slot.database}, not ${slot.here}`, fix: "choose another --slot, or connect to that database" });
  } else if (slot.wal_status === "lost") {
    add({
      verdict: "FAIL",
      name: slotName,
      detail: "has lost WAL it needed (max_slot_wal_keep_size): changes were skipped",
      fix: `SELECT pg_drop_replication_slot(${quoteLiteral(options.slot)});  then run tera-cdc again (it creates a new slot; resynchronise consumers)`,
    });
  } else if (slot.active && slot.holder === "tera-cdc") {
    // The healthy streaming state: a running tera-cdc holds its slot.
    add({ verdict: "INFO", name: slotName, detail: `pgoutput, held by a running tera-cdc (walsender PID ${slot.active_pid}); another tera-cdc would wait as a standby` });
  } else if (slot.active) {
    add({
      verdict: "WARN",
      name: slotName,
      detail: `pgoutput, held by another client (${slot.holder ? `application "${slot.holder}", ` : ""}walsender PID ${slot.active_pid}): tera-cdc would wait as a standby until it lets go`,
      fix: "stop that client, or choose another --slot",
    });
  } else {
    add({ verdict: "PASS", name: slotName, detail: "pgoutput, not active" });
  }
  return results;
}

/** The report as printed: one line per check, the fix under every FAIL and WARN. Pure. */
export function formatChecks(results: readonly CheckResult[]): string {
  const width = Math.max(...results.map((r) => r.name.length), 10);
  const lines: string[] = [];
  for (const r of results) {
    lines.push(`${r.verdict}  ${r.name.padEnd(width)}  ${r.detail}`);
    if (r.fix) lines.push(`${" ".repeat(6 + width)}  fix: ${r.fix}`);
  }
  const count = (v: Verdict) => results.filter((r) => r.verdict === v).length;
  lines.push("", `${count("PASS")} passed, ${count("FAIL")} failed, ${count("WARN")} warning${count("WARN") === 1 ? "" : "s"}${count("INFO") ? `, ${count("INFO")} for information` : ""}`);
  return `${lines.join("\n")}\n`;
}
