import { describe, expect, it } from "vitest";
import { auditInsertParams, auditInsertSql, auditTableDdl } from "../../src/audit/trail.js";
import type { Change } from "../../src/client/index.js";

describe("audit SQL", () => {
  it("quotes the table name everywhere and keys rows on (lsn, seq)", () => {
    const ref = { schema: "Audit Trail", table: 'ev"ents' };
    const ddl = auditTableDdl(ref).join(";\n");
    expect(ddl).toContain('CREATE TABLE IF NOT EXISTS "Audit Trail"."ev""ents"');
    expect(ddl).toContain("UNIQUE (lsn, seq)");
    expect(ddl).toContain("BEFORE UPDATE OR DELETE");
    const insert = auditInsertSql(ref);
    expect(insert).toContain('INSERT INTO "Audit Trail"."ev""ents"');
    expect(insert).toContain("ON CONFLICT (lsn, seq) DO NOTHING");
    expect(insert).toContain("ORDER BY position");
  });

  it("passes the object's JSON text untouched, one array per column in batch order", () => {
    const receivedAt = new Date("2024-05-01T00:00:01.000Z");
    const change = (seq: number, objectJson: string) =>
      ({ model: "device", op: "update", objectJson, commitTime: "2024-05-01T00:00:00.123456Z", lsn: "0/16B3748", xid: 9, seq, table: "public.t_devices", receivedAt }) as unknown as Change;
    const params = auditInsertParams([change(0, '{"id_device":12345678901234567890}'), change(1, '{"id_device":2}')]);
    expect(params).toEqual([
      ["device", "device"],
      ["update", "update"],
      ['{"id_device":12345678901234567890}', '{"id_device":2}'],
      ["2024-05-01T00:00:00.123456Z", "2024-05-01T00:00:00.123456Z"],
      ["0/16B3748", "0/16B3748"],
      [9, 9],
      [0, 1],
      ["public.t_devices", "public.t_devices"],
      ["2024-05-01T00:00:01.000Z", "2024-05-01T00:00:01.000Z"],
    ]);
  });
});
