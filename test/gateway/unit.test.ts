import { describe, expect, it } from "vitest";
import { tokenOfRequest } from "../../src/gateway/auth.js";
import { eventsFromMessage, type GatewayEvent } from "../../src/gateway/events.js";
import { eventBinary, eventMeta, parseClientRequest } from "../../src/gateway/frames.js";
import { EventRing } from "../../src/gateway/ring.js";
import { RowStore } from "../../src/gateway/rows.js";
import { audienceOf, canSeeModel, canSeeRow, claimsRead, objectKey, parseRules, RulesError, visibleModels } from "../../src/gateway/rules.js";
import { ClientView, verdictOf } from "../../src/gateway/view.js";
import { DatabaseEvent_EventType, decodeTeraMessage, encodeDatabaseTeraEvent, unpackAny } from "../../src/messages/index.js";
import { parseLsn } from "../../src/lsn.js";

const RULES = parseRules({
  models: {
    device: { rows: [{ column: "id_site", "in-claim": "sites" }], "all-rows-if": [{ claim: "role", equals: "admin" }] },
    user: { rows: [{ column: "id_user", "equals-claim": "sub" }] },
    audit: { require: [{ claim: "scope", includes: "audit:read" }] },
  },
});

let seqCounter = 0;
function event(op: "create" | "update" | "delete" | "truncate", object: Record<string, unknown>, model = "device"): GatewayEvent {
  const type = { create: DatabaseEvent_EventType.DB_CREATE, update: DatabaseEvent_EventType.DB_UPDATE, delete: DatabaseEvent_EventType.DB_DELETE, truncate: DatabaseEvent_EventType.DB_DELETE }[op];
  const objectValue = JSON.stringify(object);
  const seq = seqCounter++;
  return { lsnText: "0/100", lsn: 0x100n, seq, model, type, op, objectValue, object, headerTopic: `module.TeraServer.DatabaseModule.events.${model}`, time: 1, commitTime: "", table: "public.t", bytes: 100 };
}

describe("audiences (tokens the rules treat alike share each event's evaluation)", () => {
  it("reads exactly the claims the rules name", () => {
    expect(claimsRead(RULES)).toEqual(["role", "scope", "sites", "sub"]);
  });

  it("puts two claim sets in one audience only when every rule decides alike for them (random claims, rows and events)", () => {
    // A small deterministic generator, so a failure reproduces.
    let state = 12345;
    const rnd = (n: number) => {
      state = (state * 1103515245 + 12345) % 2147483648;
      return state % n;
    };
    const pick = <T,>(xs: readonly T[]): T => xs[rnd(xs.length)]!;
    const values: unknown[] = [undefined, null, 1, "1", 2, [1], ["1"], [1, 2], [2], "admin", "audit:read", "x audit:read", true, {}];
    const claimSet = () => {
      const c: Record<string, unknown> = { iat: rnd(1000), jti: String(rnd(1000)) };
      for (const name of ["sub", "sites", "role", "scope"]) {
        const v = pick(values);
        if (v !== undefined) c[name] = v;
      }
      return c;
    };
    const names = claimsRead(RULES);
    let sameAudience = 0;
    for (let i = 0; i < 4000; i++) {
      const a = claimSet();
      const b = rnd(2) === 0 ? { ...a, iat: 99_999, exp: 5 } : claimSet();
      const e = event(pick(["create", "update", "delete"] as const), { id_device: rnd(3), id_site: pick([1, 2, "1", null]), id_user: pick([1, 2, "1"]) }, pick(["device", "user", "audit"]));
      const key = objectKey(RULES, e.model, e.object);
      if (audienceOf(names, a) !== audienceOf(names, b)) continue;
      sameAudience++;
      expect(verdictOf(RULES, b, e, key)).toEqual(verdictOf(RULES, a, e, key));
      expect(visibleModels(RULES, b)).toEqual(visibleModels(RULES, a));
    }
    expect(sameAudience).toBeGreaterThan(1500);
  });

  it("keeps tokens apart that differ in a claim the rules read, even when one of them only lacks it", () => {
    const names = claimsRead(RULES);
    expect(audienceOf(names, { sub: "a", sites: [1] })).toBe(audienceOf(names, { sub: "a", sites: [1], exp: 1, name: "x" }));
    expect(audienceOf(names, { sub: "a", sites: [1] })).not.toBe(audienceOf(names, { sub: "a", sites: [2] }));
    expect(audienceOf(names, { sub: "a", sites: [1] })).not.toBe(audienceOf(names, { sub: "a", sites: [1], role: "admin" }));
    expect(audienceOf(names, { sub: "a" })).not.toBe(audienceOf(names, { sub: "a", sites: null }));
  });
});

describe("access rules", () => {
  it("gives models by require conditions and rows by claim rules", () => {
    const site1 = { sub: "7", sites: [1] };
    expect(visibleModels(RULES, site1)).toEqual(["device", "user"]);
    expect(canSeeModel(RULES, { scope: "a audit:read" }, "audit")).toBe(true);
    expect(canSeeModel(RULES, site1, "unlisted")).toBe(false);
    expect(canSeeRow(RULES, site1, "device", { id_device: 1, id_site: 1 })).toBe(true);
    expect(canSeeRow(RULES, { sites: ["1"] }, "device", { id_device: 1, id_site: 1 })).toBe(true);
    expect(canSeeRow(RULES, site1, "device", { id_device: 1, id_site: 2 })).toBe(false);
    expect(canSeeRow(RULES, site1, "device", { id_device: 1 })).toBe(false);
    expect(canSeeRow(RULES, site1, "device", { id_device: 1, id_site: null })).toBe(false);
    expect(canSeeRow(RULES, { role: "admin" }, "device", { id_device: 1, id_site: 9 })).toBe(true);
    expect(canSeeRow(RULES, site1, "user", { id_user: 7 })).toBe(true);
    expect(canSeeRow(RULES, site1, "user", { id_user: 8 })).toBe(false);
  });

  it("refuses a bad rules file with a message naming the place", () => {
    expect(() => parseRules({ models: { device: { rows: [{ column: "id_site" }] } } }, "r.yaml")).toThrow(/r.yaml: models.device.rows\[0\] needs exactly one of/);
    expect(() => parseRules({ models: { device: { row: [] } } })).toThrow(RulesError);
    expect(() => parseRules({ models: {} })).toThrow(/name at least one model/);
  });
});

describe("client view", () => {
  it("sends deletes only of objects the client was shown, and a keys-only delete when a row leaves its rights", () => {
    const view = new ClientView(RULES, { sites: [1] }, 100);
    view.models.add("device");
    expect(view.decide(event("create", { id_device: 1, id_site: 1, name: "a" })).send?.objectValue).toContain('"name":"a"');
    expect(view.decide(event("create", { id_device: 2, id_site: 2, name: "secret" })).send).toBeNull();
    expect(view.decide(event("delete", { id_device: 2 })).send).toBeNull();
    expect(view.decide(event("delete", { id_device: 1 })).send?.object).toEqual({ id_device: 1 });
    view.decide(event("create", { id_device: 3, id_site: 1, name: "c" }));
    const moved = view.decide(event("update", { id_device: 3, id_site: 2, name: "moved" }));
    expect(moved.leftView).toBe(true);
    expect(moved.send?.objectValue).toBe('{"id_device":3}');
    expect(moved.send?.type).toBe(DatabaseEvent_EventType.DB_DELETE);
    expect(view.decide(event("update", { id_device: 3, id_site: 2, name: "again" })).send).toBeNull();
    // A delete that carries the rule column (REPLICA IDENTITY FULL) is decided by the rules.
    expect(view.decide(event("delete", { id_device: 9, id_site: 1 })).send).not.toBeNull();
    expect(view.decide(event("delete", { id_device: 9, id_site: 2 })).send).toBeNull();
  });

  it("asks for a resync instead of forgetting keys when its memory is full", () => {
    const view = new ClientView(RULES, { sites: [1] }, 2);
    view.models.add("device");
    expect(view.decide(event("create", { id_device: 1, id_site: 1 })).resyncFirst).toBe(false);
    expect(view.decide(event("create", { id_device: 2, id_site: 1 })).resyncFirst).toBe(false);
    const third = view.decide(event("create", { id_device: 3, id_site: 1 }));
    expect(third.resyncFirst).toBe(true);
    expect(third.send).not.toBeNull();
    expect(view.rememberedKeys).toBe(1);
  });

  it("ignores models the client did not subscribe to", () => {
    const view = new ClientView(RULES, { sub: "7", sites: [1] }, 10);
    view.models.add("device");
    expect(view.decide(event("create", { id_user: 7 }, "user")).send).toBeNull();
  });
});

describe("event ring", () => {
  const at = (lsn: bigint, seq: number): GatewayEvent => ({ ...event("create", { id_device: seq, id_site: 1 }), lsn, lsnText: "", seq });

  it("resumes only from a position it can vouch for", () => {
    const ring = new EventRing(3, 1_000_000);
    for (const e of [at(10n, 0), at(10n, 1), at(20n, 0), at(30n, 0)]) ring.push(e);
    expect(ring.size).toBe(3);
    expect(ring.after({ lsn: 10n, seq: 1 })?.map((e) => [e.lsn, e.seq])).toEqual([[20n, 0], [30n, 0]]);
    expect(ring.after({ lsn: 20n, seq: 0 })?.length).toBe(1);
    expect(ring.after({ lsn: 30n, seq: 0 })).toEqual([]);
    expect(ring.after({ lsn: 10n, seq: 0 })?.length).toBe(3); // the dropped event itself was seen: all after it is held
    expect(ring.after({ lsn: 5n, seq: 0 })).toBeNull(); // (10,0) was dropped after it
    expect(ring.after({ lsn: 40n, seq: 0 })).toBeNull(); // never handed out
    ring.markGap();
    expect(ring.after({ lsn: 30n, seq: 0 })).toBeNull();
  });

  it("is bounded by bytes too", () => {
    const ring = new EventRing(1000, 250);
    for (let i = 0; i < 10; i++) ring.push(at(BigInt(i + 1), 0));
    expect(ring.totalBytes).toBeLessThanOrEqual(250);
    expect(ring.size).toBe(2);
  });
});

describe("frames", () => {
  it("splits a batched TeraEvent into one OpenTera TeraMessage frame per row, seq counting from the property", () => {
    const payload = encodeDatabaseTeraEvent("module.TeraServer.DatabaseModule.events.device", 1700000000.5, [
      { type: DatabaseEvent_EventType.DB_CREATE, objectType: "device", objectValue: '{"id_device":1,"id_site":1}' },
      { type: DatabaseEvent_EventType.DB_UPDATE, objectType: "device", objectValue: '{"id_device":2,"id_site":1}' },
    ]);
    const events = eventsFromMessage(payload, { lsn: "0/16B3748", seq: "4", op: "create,update", "commit-time": "2024-01-01T00:00:00.000001Z", table: "public.t_devices", count: "2" });
    expect(events.map((e) => [e.seq, e.op, e.lsn])).toEqual([[4, "create", parseLsn("0/16B3748")], [5, "update", parseLsn("0/16B3748")]]);
    expect(JSON.parse(eventMeta(events[1]!, false))).toEqual({ type: "event", lsn: "0/16B3748", seq: 5, model: "device", op: "update", commitTime: "2024-01-01T00:00:00.000001Z", table: "public.t_devices" });
    const message = decodeTeraMessage(eventBinary(events[1]!));
    expect(message.ok).toBe(true);
    const outer = unpackAny(message.ok ? message.message.message! : (undefined as never));
    expect(outer.type).toBe("TeraEvent");
    if (outer.type !== "TeraEvent") return;
    expect(outer.message.header?.topic).toBe("module.TeraServer.DatabaseModule.events.device");
    expect(outer.message.header?.time).toBe(1700000000.5);
    expect(outer.message.events).toHaveLength(1);
    const inner = unpackAny(outer.message.events[0]!);
    expect(inner.type === "DatabaseEvent" && inner.message.objectValue).toBe('{"id_device":2,"id_site":1}');
    expect(() => eventsFromMessage(payload, {})).toThrow(/lsn user property/);
  });

  it("validates client requests and reads the token from the subprotocol or the query", () => {
    expect(parseClientRequest('{"type":"subscribe","models":["device"],"after":{"lsn":"0/1","seq":2},"session":"s"}')).toEqual({ type: "subscribe", models: ["device"], after: { lsn: "0/1", seq: 2 }, session: "s" });
    expect(parseClientRequest('{"type":"subscribe","models":[]}')).toMatch(/non-empty list/);
    expect(parseClientRequest("nope")).toMatch(/not JSON/);
    expect(tokenOfRequest("/ws", "tera-cdc.v1, bearer.abc.def.ghi")).toBe("abc.def.ghi");
    expect(tokenOfRequest("/ws?token=xyz", undefined)).toBe("xyz");
    expect(tokenOfRequest("/ws", "tera-cdc.v1")).toBeUndefined();
  });
});

describe("gateway memory bounds", () => {
  const at = (e: GatewayEvent, lsn: number): GatewayEvent => ({ ...e, lsn: BigInt(lsn), seq: 0 });

  it("keeps a row's earlier versions only while their events are in the ring: 10,000 updates of one row track at most the ring's", () => {
    const store = new RowStore(RULES, 100);
    const ring = new EventRing(50, 1_000_000_000, (dropped) => store.forget(dropped));
    for (let i = 1; i <= 10_000; i++) {
      const update = at(event(i === 1 ? "create" : "update", { id_device: 1, id_site: 1, name: `v${i}` }), i);
      const replaced = store.apply(update);
      ring.push(update, replaced?.bytes ?? 0);
    }
    expect(store.trackedVersions).toBeLessThanOrEqual(50);
    // What a resume asks for is still known: the row as it was before the ring's events.
    expect(store.rowsBefore("device", ring.after({ lsn: 9_960n, seq: 0 })!)?.map((r) => r.object.name)).toEqual(["v9960"]);
    ring.markGap();
    expect(store.trackedVersions).toBe(0);
  });

  it("counts the row an event replaced in the ring's bytes", () => {
    const ring = new EventRing(1000, 1000);
    ring.push(at(event("update", { id_device: 1, id_site: 1 }), 1), 850); // 100 + 850
    ring.push(at(event("update", { id_device: 2, id_site: 1 }), 2)); // 100: 1,050 > 1,000
    expect(ring.size).toBe(1);
    expect(ring.totalBytes).toBe(100);
  });

  it("holds rows up to a byte bound; past it the model is incomplete, not partial", () => {
    const store = new RowStore(RULES, 1_000_000, 1_000);
    for (let i = 1; i <= 9; i++) store.apply(at(event("create", { id_device: i, id_site: 1 }), i));
    expect(store.totalBytes).toBe(900);
    expect(store.rowsOf("device")).toHaveLength(9);
    store.apply(at(event("update", { id_device: 3, id_site: 2 }), 10)); // replaces a row: still 900
    expect(store.rowsOf("device")).toHaveLength(9);
    store.apply(at(event("create", { id_device: 10, id_site: 1 }), 11));
    store.apply(at(event("create", { id_device: 11, id_site: 1 }), 12));
    expect(store.rowsOf("device")).toBeNull();
    expect(store.totalBytes).toBe(0);
  });
});

describe("current rows at an earlier position (resume on another gateway instance)", () => {
  const at = (e: GatewayEvent, seq: number): GatewayEvent => ({ ...e, lsn: BigInt(seq), seq: 0 });
  it("undoes the later events: an insert removed, an update and a delete restored; a truncate cannot be undone", () => {
    const store = new RowStore(RULES, 100);
    const history = [
      at(event("create", { id_device: 1, id_site: 1, name: "a" }), 1),
      at(event("create", { id_device: 2, id_site: 1, name: "b" }), 2),
      at(event("update", { id_device: 1, id_site: 2, name: "a2" }), 3),
      at(event("delete", { id_device: 2 }), 4),
      at(event("create", { id_device: 3, id_site: 1, name: "c" }), 5),
    ];
    for (const e of history) store.apply(e);
    expect(store.origin).toEqual({ lsn: 1n, seq: 0 });
    const names = (rows: readonly GatewayEvent[] | null) => rows?.map((r) => `${r.object.id_device}:${r.object.name}`).sort() ?? null;
    expect(names(store.rowsBefore("device", history.slice(2)))).toEqual(["1:a", "2:b"]);
    expect(names(store.rowsBefore("device", history.slice(4)))).toEqual(["1:a2"]);
    expect(names(store.rowsBefore("device", []))).toEqual(["1:a2", "3:c"]);
    const truncate = at(event("truncate", {}), 6);
    store.apply(truncate);
    expect(store.rowsBefore("device", [truncate])).toBeNull();
    store.markGap();
    expect(store.origin).toBeNull();
  });
});
