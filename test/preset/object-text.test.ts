import { spawnSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import type { RelationMessage, TupleValues } from "../../src/decode/pgoutput.js";
import { TypeCatalog } from "../../src/decode/types.js";
import { deleteObject, insertObject, updateObject } from "../../src/model/events.js";
import { planRelation } from "../../src/model/plan.js";
import { presetTables } from "../../src/preset/index.js";

/**
 * The preset's object text against Python's own json.dumps of the dict OpenTera would build
 * (event-format.md): the oracle is CPython, which shares no code with tera-cdc.
 */
function pythonDumps(entries: readonly [string, unknown][]): string {
  // The dict is built in Python from a list of pairs, so key order is the list's; values cross as JSON.
  const script = "import json,sys\npairs=json.loads(sys.stdin.read())\nsys.stdout.write(json.dumps(dict(pairs)))";
  const result = spawnSync("python3", ["-c", script], { input: JSON.stringify(entries), encoding: "utf8" });
  if (result.status !== 0) throw new Error(`python3 failed: ${result.stderr}`);
  return result.stdout;
}

const types = new TypeCatalog();
const settings = presetTables("opentera").tableSettings;

function relationOf(table: string, columns: readonly [string, number][]): RelationMessage {
  return { tag: "relation", relationOid: 1, schema: "public", table, replicaIdentity: "f", columns: columns.map(([name, typeOid]) => ({ name, typeOid, typeMod: -1, flags: 1 })) };
}

// t_users as OpenTera creates it (column order of the table, not of the object).
const USERS = relationOf("t_users", [
  ["version_id", 20], ["deleted_at", 1184], ["id_user", 23], ["user_uuid", 1043], ["user_username", 1043], ["user_email", 1043],
  ["user_firstname", 1043], ["user_lastname", 1043], ["user_password", 1043], ["user_enabled", 16], ["user_profile", 1043],
  ["user_superadmin", 16], ["user_2fa_enabled", 16], ["user_lastonline", 1184],
]);
const usersPlan = planRelation(USERS, ["id_user"], settings["public.t_users"]!, types);

function userRow(first: string, last: string, deletedAt: string | null): TupleValues {
  return ["1", deletedAt, "7", "a0000000-0000-0000-0000-000000000007", "login", "e@x.org", first, last, "hash", "t", "{}", "f", "t", null];
}

const NAMES: readonly [string, string][] = [
  ["Wanda", "Work"],
  ["Éloïse", "Bérubé-Tremblay"],
  ["名前", "😀 emoji \u{10FFFF}"],
  ['quote " back \\ slash', "tab\tnew\nline\u0001\u001f"],
  ["del\u007f", "nbsp\u00a0 line-sep\u2028 para\u2029"],
  ["", "/ slash <script>"],
];

describe("the opentera preset's object text is json.dumps of OpenTera's dict", () => {
  it("user CREATE: alphabetical columns, no deleted_at while NULL, user_name appended, ASCII only", () => {
    for (const [first, last] of NAMES) {
      const text = insertObject(usersPlan, userRow(first, last, null)).json;
      const expected = pythonDumps([
        ["id_user", 7], ["user_2fa_enabled", true], ["user_enabled", true], ["user_firstname", first], ["user_lastname", last],
        ["user_superadmin", false], ["user_uuid", "a0000000-0000-0000-0000-000000000007"], ["user_name", `${first} ${last}`],
      ]);
      expect(text, first).toBe(expected);
    }
  });

  it("user UPDATE of a soft-deleted row: deleted_at at its alphabetical place, isoformat with offset", () => {
    const text = updateObject(usersPlan, userRow("A", "B", "2026-01-02 03:04:05+00"), null, false).json;
    expect(text).toBe(
      pythonDumps([
        ["deleted_at", "2026-01-02T03:04:05+00:00"], ["id_user", 7], ["user_2fa_enabled", true], ["user_enabled", true], ["user_firstname", "A"],
        ["user_lastname", "B"], ["user_superadmin", false], ["user_uuid", "a0000000-0000-0000-0000-000000000007"], ["user_name", "A B"],
      ]),
    );
  });

  it("user DELETE: OpenTera's minimal object in its key order (primary key first) and Python's separators, no user_name", () => {
    expect(deleteObject(usersPlan, userRow("A", "B", null)).json).toBe(pythonDumps([["id_user", 7], ["user_uuid", "a0000000-0000-0000-0000-000000000007"]]));
  });

  it("asset DELETE: primary key before asset_uuid, as OpenTera orders it (not alphabetical)", () => {
    const assets = relationOf("t_assets", [["version_id", 20], ["deleted_at", 1184], ["id_asset", 23], ["asset_uuid", 1043], ["asset_name", 1043]]);
    const plan = planRelation(assets, ["id_asset"], settings["public.t_assets"]!, types);
    expect(deleteObject(plan, ["1", null, "5", "u-5", "n"]).json).toBe(pythonDumps([["id_asset", 5], ["asset_uuid", "u-5"]]));
  });

  it("service: endpoints left out while NULL or empty, present when set", () => {
    const services = relationOf("t_services", [
      ["version_id", 20], ["deleted_at", 1184], ["id_service", 23], ["service_uuid", 1043], ["service_name", 1043], ["service_key", 1043],
      ["service_hostname", 1043], ["service_port", 23], ["service_endpoint", 1043], ["service_clientendpoint", 1043],
      ["service_endpoint_user", 1043], ["service_endpoint_participant", 1043], ["service_endpoint_device", 1043], ["service_enabled", 16],
      ["service_system", 16], ["service_editable_config", 16], ["service_default_config", 1043], ["service_has_assets", 16], ["service_has_tests", 16],
    ]);
    const plan = planRelation(services, ["id_service"], settings["public.t_services"]!, types);
    const row: TupleValues = ["1", null, "3", "u-3", "Serviçe", "Key", "host", "4000", "/e", "/c", "/user", "", null, "t", "f", "t", '{"a": 1}', "f", "t"];
    expect(insertObject(plan, row).json).toBe(
      pythonDumps([
        ["id_service", 3], ["service_clientendpoint", "/c"], ["service_default_config", '{"a": 1}'], ["service_editable_config", true], ["service_enabled", true],
        ["service_endpoint", "/e"], ["service_endpoint_user", "/user"], ["service_has_assets", false], ["service_has_tests", true], ["service_hostname", "host"],
        ["service_key", "Key"], ["service_name", "Serviçe"], ["service_port", 4000], ["service_system", false], ["service_uuid", "u-3"],
      ]),
    );
  });

  it("leaves tables outside the preset in tera-cdc's compact form", () => {
    const plan = planRelation(relationOf("t_other", [["id", 23], ["deleted_at", 1184], ["name", 25]]), ["id"], {}, types);
    expect(insertObject(plan, ["1", null, "é"]).json).toBe('{"deleted_at":null,"id":1,"name":"é"}');
  });
});
