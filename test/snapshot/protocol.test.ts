import { describe, expect, it } from "vitest";
import { handleRpc, replyTopicOf } from "../../src/rpc/dispatch.js";
import { encodeMessage } from "../../src/messages/index.js";
import { WatermarkObserver } from "../../src/snapshot/observer.js";
import { checkWhere, chunkQuery, parseWatermark, parseXidSnapshot, progressLine, visibleIn, watermarkContent } from "../../src/snapshot/protocol.js";
import type { RelationPlan } from "../../src/model/plan.js";
import { planRelation } from "../../src/model/plan.js";
import { TypeCatalog } from "../../src/decode/types.js";
import { stringArg } from "./support.js";

describe("where filters", () => {
  it("accepts conditions, with parentheses and quoted text", () => {
    expect(checkWhere("site = 2 AND (name LIKE 'a)%' OR \"Odd\"\"Name\" IS NULL)")).toBeNull();
    expect(checkWhere("id IN (SELECT id FROM t WHERE x > 1)")).toBeNull();
  });
  it("refuses what could escape its parentheses", () => {
    expect(checkWhere("1=1) UNION SELECT 1 --")).toMatch(/closes a parenthesis/);
    expect(checkWhere("1=1; DROP TABLE t")).toMatch(/';'/);
    expect(checkWhere("x = 1 /* c */")).toMatch(/comments/);
    expect(checkWhere("x = E'\\' ) union'")).toMatch(/backslashes/);
    expect(checkWhere("x = $$a$$")).toMatch(/\$/);
    expect(checkWhere("(x = 1")).toMatch(/open/);
    expect(checkWhere("x = 'open")).toMatch(/unterminated/);
    expect(checkWhere("  ")).toMatch(/empty/);
  });
});

describe("chunk query", () => {
  it("reads every column as text after the last composite key, in key order", () => {
    const sql = chunkQuery({ table: '"public"."t"', columns: ["a", "b", "v"], key: [{ name: "a", type: "integer" }, { name: "b", type: "text" }], where: "v > 1", after: true, limit: 100 });
    expect(sql).toBe('SELECT "a" AS c0, "b" AS c1, "v" AS c2 FROM "public"."t" WHERE ("a", "b") > ($1::integer, $2::text) AND (v > 1) ORDER BY "a", "b" LIMIT 100');
  });
});

describe("watermarks and visibility", () => {
  it("round-trips a watermark and ignores other messages", () => {
    const content = watermarkContent({ snapshot: 3, window: "ab-1", mark: "high" });
    expect(parseWatermark("tera-cdc", Buffer.from(content))).toEqual({ snapshot: 3, window: "ab-1", mark: "high" });
    expect(parseWatermark("other-app", Buffer.from(content))).toBeNull();
    expect(parseWatermark("tera-cdc", Buffer.from("{nope"))).toBeNull();
  });
  it("decides visibility of 32-bit xids against a 64-bit snapshot", () => {
    const s = parseXidSnapshot(`${2n ** 32n + 100n}:${2n ** 32n + 110n}:${2n ** 32n + 105n}`);
    expect(visibleIn(s, 99)).toBe(true);
    expect(visibleIn(s, 104)).toBe(true);
    expect(visibleIn(s, 105)).toBe(false);
    expect(visibleIn(s, 110)).toBe(false);
    expect(visibleIn(s, -1 >>> 0)).toBe(true); // previous epoch's last xid
  });
  it("draws a progress line", () => {
    expect(progressLine(500, 1000, 1000, 10)).toBe("[#####-----]  50% 500 of ~1,000 rows, 500 rows/s, 00:01 left");
  });
});

function plan(): RelationPlan {
  const relation = {
    tag: "relation" as const,
    relationOid: 42,
    schema: "public",
    table: "t",
    replicaIdentity: "d" as const,
    columns: [
      { name: "id", typeOid: 23, typeMod: -1, flags: 1 },
      { name: "val", typeOid: 25, typeMod: -1, flags: 0 },
    ],
  };
  return planRelation(relation, ["id"], {}, new TypeCatalog());
}

describe("the watermark observer", () => {
  it("drops chunk rows changed between the watermarks or by a transaction the SELECT did not see", async () => {
    const observer = new WatermarkObserver();
    const p = plan();
    const done = observer.open({ snapshot: 1, window: "w", plan: p, markersBefore: ["start"], markersAfter: ["end"], rowsBefore: 0 });
    const mark = (m: "low" | "high", lsn: bigint) => observer.onLogicalMessage({ prefix: "tera-cdc", content: Buffer.from(watermarkContent({ snapshot: 1, window: "w", mark: m })), lsn });
    observer.onRowChange(p, "update", [["1", "seen"]], 100); // before low, visible: row 1 kept
    observer.onRowChange(p, "update", [["2", "unseen"]], 105); // before low, not visible: row 2 dropped
    expect(mark("low", 10n)).toBeNull();
    observer.onRowChange(p, "delete", [["3", null]], 107); // between: row 3 dropped
    observer.setRows("w", [["1", "a"], ["2", "b"], ["3", "c"], ["4", "d"]], parseXidSnapshot("100:110:105"));
    observer.onRowChange(p, "update", [["5", "x"], ["4", null]], 108); // key change 4 -> 5 between: row 4 dropped
    const events = mark("high", 20n)!;
    expect(events.lsn).toBe(20n);
    expect(events.properties).toEqual({ snapshot: "1" });
    expect(events.items).toEqual([
      { marker: { "snapshot-marker": "start", model: "t" } },
      { row: ["1", "a"] },
      { marker: { "snapshot-marker": "end", model: "t", "snapshot-rows": "1" } },
    ]);
    observer.onSafeLsn(19n);
    observer.onSafeLsn(20n);
    await expect(done).resolves.toBe(1);
  });

  it("fails the window when the stream restarts, so the chunk is taken again", async () => {
    const observer = new WatermarkObserver();
    const done = observer.open({ snapshot: 1, window: "w", plan: plan(), markersBefore: [], markersAfter: [], rowsBefore: 0 });
    observer.streamRestarted();
    await expect(done).rejects.toThrow(/restarted/);
  });
});

describe("RPC dispatch", () => {
  const methods = { echo: { signature: "echo(text)", handler: async (args: import("../../src/rpc/dispatch.js").RpcArgs) => args.string(0, "text") } };
  const request = (method: string, args = [stringArg("hi")], replyTo = "a.b.c") =>
    encodeMessage({ $type: "opentera.protobuf.RPCMessage", method, replyTo, id: 7n, timestamp: 0, args });
  it("replies {id, return_value} on the MQTT form of a dotted reply_to", async () => {
    expect(await handleRpc(request("echo"), methods)).toEqual({ topic: "a/b/c", reply: '{"id":7,"return_value":"hi"}', method: "echo", ok: true });
  });
  it("replies {id, error} for an unknown method or a bad argument", async () => {
    expect(JSON.parse((await handleRpc(request("nope"), methods)).reply)).toEqual({ id: 7, error: 'unknown method "nope": available are echo(text)' });
    expect(JSON.parse((await handleRpc(request("echo", []), methods)).reply).error).toMatch(/argument 1 \(text\) is missing/);
    expect((await handleRpc(Uint8Array.of(0xff, 0xff), methods)).topic).toBeNull();
  });
  it("keeps MQTT reply topics and refuses wildcards", () => {
    expect(replyTopicOf("x/y")).toBe("x/y");
    expect(replyTopicOf("x/+")).toBeNull();
    expect(replyTopicOf("")).toBeNull();
  });
});
