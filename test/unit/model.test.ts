import { describe, expect, it } from "vitest";
import type { RelationMessage } from "../../src/decode/pgoutput.js";
import { TypeCatalog } from "../../src/decode/types.js";
import { deleteObject, insertObject, updateObject } from "../../src/model/events.js";
import { looksSecret, modelNameOf } from "../../src/model/naming.js";
import { planRelation } from "../../src/model/plan.js";

const types = new TypeCatalog();

function relation(identity: "d" | "f", columns: [string, number, boolean][]): RelationMessage {
  return {
    tag: "relation",
    relationOid: 1234,
    schema: "public",
    table: "t_devices",
    replicaIdentity: identity,
    columns: columns.map(([name, typeOid, key]) => ({ name, typeOid, typeMod: -1, flags: identity === "f" || key ? 1 : 0 })),
  };
}

const devices = relation("d", [
  ["id_device", 23, true],
  ["device_uuid", 2950, false],
  ["device_name", 25, false],
  ["device_token", 25, false],
  ["device_enabled", 16, false],
]);

describe("model naming (OpenTera's rule)", () => {
  it("names a model after its id_ primary key, else after its table", () => {
    expect(modelNameOf("t_devices", ["id_device"])).toBe("device");
    expect(modelNameOf("t_sessions_types", ["id_session_type"])).toBe("session_type");
    expect(modelNameOf("t_links", ["id_a", "id_b"])).toBe("t_links");
    expect(modelNameOf("things", ["thing_id"])).toBe("things");
  });

  it("treats password, secret, token, certificate, private_key and otp names as secrets", () => {
    for (const name of ["user_password", "client_secret", "device_token", "device_certificate", "private_key", "user_otp_secret"]) {
      expect(looksSecret(name), name).toBe(true);
    }
    expect(looksSecret("device_name")).toBe(false);
  });
});

describe("relation plans and row objects", () => {
  it("publishes columns in alphabetical order and withholds secrets", () => {
    const plan = planRelation(devices, ["id_device"], {}, types);
    expect(plan.model).toBe("device");
    expect(plan.mqttTopic).toBe("module/TeraServer/DatabaseModule/events/device");
    expect(plan.dottedTopic).toBe("module.TeraServer.DatabaseModule.events.device");
    expect(plan.columns.map((c) => c.name)).toEqual(["device_enabled", "device_name", "device_uuid", "id_device"]);
    expect(plan.withheld).toEqual(["device_token"]);
    const object = insertObject(plan, ["7", "9b6f1e5e-0000-4000-8000-000000000001", "Kit", "s3cr3t", "t"]);
    expect(object.json).toBe('{"device_enabled":true,"device_name":"Kit","device_uuid":"9b6f1e5e-0000-4000-8000-000000000001","id_device":7}');
    expect(object.json).not.toContain("s3cr3t");
  });

  it("publishes a secret-looking column only when the table's columns name it", () => {
    const plan = planRelation(devices, ["id_device"], { columns: ["id_device", "device_token"] }, types);
    expect(plan.columns.map((c) => c.name)).toEqual(["device_token", "id_device"]);
  });

  it("leaves out excluded columns and honours a model override and topic template", () => {
    const plan = planRelation(devices, ["id_device"], { exclude: ["device_name"], model: "kit", topic: "site/{schema}/{table}/{model}" }, types);
    expect(plan.columns.map((c) => c.name)).not.toContain("device_name");
    expect(plan.model).toBe("kit");
    expect(plan.mqttTopic).toBe("site/public/t_devices/kit");
  });

  it("leaves an unchanged TOASTed value out instead of publishing null, and says so", () => {
    const plan = planRelation(devices, ["id_device"], {}, types);
    const object = updateObject(plan, ["7", "u-1", undefined, null, "f"], null, false);
    expect(JSON.parse(object.json)).toEqual({ id_device: 7, device_uuid: "u-1", device_enabled: false });
    expect(object.unchanged).toEqual(["device_name"]);
  });

  it("takes an unchanged TOASTed value from the old row under REPLICA IDENTITY FULL", () => {
    const full = relation("f", [
      ["id_device", 23, true],
      ["device_name", 25, false],
    ]);
    const plan = planRelation(full, ["id_device"], {}, types);
    const object = updateObject(plan, ["7", undefined], ["7", "long text"], true);
    expect(JSON.parse(object.json)).toEqual({ id_device: 7, device_name: "long text" });
    expect(object.unchanged).toBeNull();
  });

  it("gives a delete the key and the _uuid delete keys the replica identity carries", () => {
    const keyOnly = planRelation(devices, ["id_device"], {}, types);
    expect(keyOnly.deleteKeysUnavailable).toEqual(["device_uuid"]);
    expect(deleteObject(keyOnly, ["7", null, null, null, null]).json).toBe('{"id_device":7}');

    const full = relation("f", devices.columns.map((c) => [c.name, c.typeOid, c.name === "id_device"]));
    const fullPlan = planRelation(full, ["id_device"], {}, types);
    expect(fullPlan.deleteKeysUnavailable).toEqual([]);
    const object = deleteObject(fullPlan, ["7", "u-1", "Kit", "s3cr3t", "t"]);
    expect(object.json).toBe('{"device_uuid":"u-1","id_device":7}');
  });

  it("uses configured delete keys instead of the _uuid default", () => {
    const full = relation("f", devices.columns.map((c) => [c.name, c.typeOid, c.name === "id_device"]));
    const plan = planRelation(full, ["id_device"], { deleteKeys: ["device_name"] }, types);
    expect(deleteObject(plan, ["7", "u-1", "Kit", "x", "t"]).json).toBe('{"device_name":"Kit","id_device":7}');
  });
});
