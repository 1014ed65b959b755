import { describe, expect, it } from "vitest";
import { handleRpc, replyTopicOf } from "../../src/rpc/dispatch.js";
import { encodeMessage } from "../../src/messages/index.js";
import { WatermarkObserver } from "../../src/snapshot/observer.js";
import { chunkQuery, parseWatermark, parseXidSnapshot, progressLine, visibleIn, watermarkContent } from "../../src/snapshot/protocol.js";
import type { RelationPlan } from "../../src/model/plan.js";
import { planRelation } from "../../src/model/plan.js";
import { TypeCatalog } from "../../src/decode/types.js";
import { stringArg } from "./support.js";

describe("chunk query", () => {
  it("reads every column as text after the last composite key, in key order", () => {
    const sql = chunkQuery({
      table: '"public"."t"',
      columns: ["a", "b", "v"],
      key: [{ name: "a", type: "integer" }, { name: "b", type: "text" }],
      filter: [{ column: "v", op: ">", value: 1 }, { column: "b", op: "in", value: ["x", "y"] }],
      after: ["4", "k"],
      limit: 100,
    });
    expect(sql.text).toBe('SELECT "a" AS c0, "b" AS c1, "v" AS c2 FROM "public"."t" WHERE ("a", "b") > ($1::integer, $2::text) AND ("v" > $3 AND "b" = ANY($4)) ORDER BY "a", "b" LIMIT 100');
    expect(sql.values).toEqual(["4", "k", "1", ["x", "y"]]);
    const first = chunkQuery({ table: '"t"', columns: ["a"], key: [{ name: "a", type: "integer" }], filter: [{ column: "a", op: "is null" }], after: null, limit: 5 });
    expect(first).toEqual({ text: 'SELECT "a" AS c0 FROM "t" WHERE ("a" IS NULL) ORDER BY "a" LIMIT 5', values: [] });
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
  const policy = { maxRequestBytes: 1024, replyPrefixes: ["a/"], operatorPrefixes: [] };
  const request = (method: string, args = [stringArg("hi")], replyTo = "a.b.c") =>
    encodeMessage({ $type: "opentera.protobuf.RPCMessage", method, replyTo, id: 7n, timestamp: 0, args });
  it("replies {id, return_value} on the MQTT form of a dotted reply_to", async () => {
    expect(await handleRpc(request("echo"), methods, policy)).toEqual({ topic: "a/b/c", reply: '{"id":7,"return_value":"hi"}', method: "echo", ok: true });
  });
  it("replies {id, error} for an unknown method or a bad argument", async () => {
    expect(JSON.parse((await handleRpc(request("nope"), methods, policy)).reply)).toEqual({ id: 7, error: 'unknown method "nope": available are echo(text)' });
    expect(JSON.parse((await handleRpc(request("echo", []), methods, policy)).reply).error).toMatch(/argument 1 \(text\) is missing/);
    expect((await handleRpc(Uint8Array.of(0xff, 0xff), methods, policy)).topic).toBeNull();
  });
  it("answers only under the allowed reply prefixes, reads no request over the size limit", async () => {
    const refused = await handleRpc(request("echo", [stringArg("hi")], "module.TeraServer.DatabaseModule.events.project"), methods, policy);
    expect(refused.topic).toBeNull();
    expect(JSON.parse(refused.reply).error).toMatch(/reply_to "module\/TeraServer\/DatabaseModule\/events\/project" is not under an allowed prefix \(a\/; setting rpc-reply-prefixes\)/);
    const big = await handleRpc(request("echo", [stringArg("x".repeat(2000))]), methods, policy);
    expect(big.topic).toBeNull();
    expect(JSON.parse(big.reply).error).toMatch(/over the limit of 1024/);
  });
  it("never returns an unexpected error's text: a code and a reference for the log", async () => {
    const failing = { boom: { signature: "boom()", handler: async () => { throw Object.assign(new Error('invalid input syntax for type integer: "$2b$12$hash"'), { code: "22P02" }); } } };
    const outcome = await handleRpc(request("boom", []), failing, policy);
    expect(outcome.reply).not.toContain("hash");
    expect(JSON.parse(outcome.reply).error).toMatch(/^boom failed \(22P02, reference [0-9a-f]{8} in tera-cdc's log\)$/);
    expect(outcome.internal?.logged).toContain("$2b$12$hash");
    expect(JSON.parse(outcome.reply).error).toContain(outcome.internal!.reference);
  });
  it("keeps MQTT reply topics and refuses wildcards", () => {
    expect(replyTopicOf("x/y")).toBe("x/y");
    expect(replyTopicOf("x/+")).toBeNull();
    expect(replyTopicOf("")).toBeNull();
  });
});
