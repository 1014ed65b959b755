import { describe, expect, it } from "vitest";
import { cacheKeyOf, ChangeDecodeError, changeKey, decodeChanges, invalidateCache, NO_POSITION, RecentKeys, type Change } from "../../src/client/index.js";
import { DatabaseEvent_EventType, encodeDatabaseTeraEvent } from "../../src/messages/index.js";

const TOPIC = "module/TeraServer/DatabaseModule/events/device";
const DOTTED = "module.TeraServer.DatabaseModule.events.device";
const NOW = new Date("2024-05-01T00:00:00Z");

function payload(events: { type: DatabaseEvent_EventType; object: unknown }[]): Uint8Array {
  return encodeDatabaseTeraEvent(DOTTED, 1714521600.5, events.map((e) => ({ type: e.type, objectType: "device", objectValue: JSON.stringify(e.object) })));
}

const BASE = { lsn: "0/16B3748", xid: "731", "commit-time": "2024-05-01T00:00:00.123456Z", table: "public.t_devices", seq: "0", op: "create" };

describe("decodeChanges", () => {
  it("decodes a message from an MQTT 3.1.1 broker (no user properties) without a position, telling a truncate from a delete", () => {
    const bytes = payload([
      { type: DatabaseEvent_EventType.DB_UPDATE, object: { id_device: 7 } },
      { type: DatabaseEvent_EventType.DB_DELETE, object: { id_device: 7 } },
      { type: DatabaseEvent_EventType.DB_DELETE, object: {} },
    ]);
    const changes = decodeChanges(TOPIC, bytes, undefined, NOW);
    expect(changes.map((c) => [c.op, c.lsn, c.lsnValue, c.seq])).toEqual([
      ["update", "", NO_POSITION, 0],
      ["delete", "", NO_POSITION, 1],
      ["truncate", "", NO_POSITION, 2],
    ]);
    expect(changes[0]!.commitTime).toBe("2024-05-01T00:00:00.500Z");
  });

  it("still refuses an MQTT 5 message whose properties lack the lsn", () => {
    const bytes = payload([{ type: DatabaseEvent_EventType.DB_CREATE, object: { id_device: 1 } }]);
    expect(() => decodeChanges(TOPIC, bytes, { seq: "0" }, NOW)).toThrow(/no lsn user property/);
  });

  it("types a single-event message from its user properties", () => {
    const [change, ...rest] = decodeChanges(TOPIC, payload([{ type: DatabaseEvent_EventType.DB_CREATE, object: { id_device: 7, name: "a" } }]), BASE, NOW);
    expect(rest).toHaveLength(0);
    expect(change).toMatchObject({
      model: "device",
      op: "create",
      object: { id_device: 7, name: "a" },
      objectJson: '{"id_device":7,"name":"a"}',
      commitTime: "2024-05-01T00:00:00.123456Z",
      lsn: "0/16B3748",
      lsnValue: 0x16b3748n,
      xid: 731,
      seq: 0,
      table: "public.t_devices",
      unchanged: [],
      keysOnly: false,
      receivedAt: NOW,
      topic: TOPIC,
    });
    expect(change!.teraEvent.header?.topic).toBe(DOTTED);
  });

  it("numbers the events of a batched message from the first seq and takes each op from the list", () => {
    const bytes = payload([
      { type: DatabaseEvent_EventType.DB_CREATE, object: { id_device: 1 } },
      { type: DatabaseEvent_EventType.DB_UPDATE, object: { id_device: 1 } },
      { type: DatabaseEvent_EventType.DB_DELETE, object: { id_device: 1 } },
    ]);
    const changes = decodeChanges(TOPIC, bytes, { ...BASE, seq: "5", count: "3", op: "create,update,delete" }, NOW);
    expect(changes.map((c) => [c.op, c.seq])).toEqual([["create", 5], ["update", 6], ["delete", 7]]);
    expect(new Set(changes.map(changeKey)).size).toBe(3);
  });

  it("recognises a truncate: a DB_DELETE with {} and op=truncate", () => {
    const [change] = decodeChanges(TOPIC, payload([{ type: DatabaseEvent_EventType.DB_DELETE, object: {} }]), { ...BASE, op: "truncate" }, NOW);
    expect(change!.op).toBe("truncate");
    expect(change!.object).toEqual({});
  });

  it("gives no change for a snapshot marker (a TeraEvent without events) and tags snapshot rows", () => {
    const marker = encodeDatabaseTeraEvent(DOTTED, 1, []);
    expect(decodeChanges(TOPIC, marker, { lsn: "0/5", seq: "0", snapshot: "7", "snapshot-marker": "start" }, NOW)).toEqual([]);
    const [row] = decodeChanges(TOPIC, payload([{ type: DatabaseEvent_EventType.DB_UPDATE, object: { id_device: 1 } }]), { ...BASE, op: "update", snapshot: "7" }, NOW);
    expect(row!.snapshot).toBe("7");
    expect(decodeChanges(TOPIC, payload([{ type: DatabaseEvent_EventType.DB_CREATE, object: {} }]), BASE, NOW)[0]!.snapshot).toBeNull();
  });

  it("reads unchanged TOAST columns and keys-only events", () => {
    const [change] = decodeChanges(TOPIC, payload([{ type: DatabaseEvent_EventType.DB_UPDATE, object: { id_device: 1 } }]), { ...BASE, op: "update", unchanged: "big,doc", "keys-only": "true" }, NOW);
    expect(change!.unchanged).toEqual(["big", "doc"]);
    expect(change!.keysOnly).toBe(true);
  });

  it("refuses what it cannot position or decode, naming the problem", () => {
    const good = payload([{ type: DatabaseEvent_EventType.DB_CREATE, object: {} }]);
    const { lsn: _lsn, ...noLsn } = BASE;
    expect(() => decodeChanges(TOPIC, good, noLsn, NOW)).toThrow(/no lsn user property/);
    expect(() => decodeChanges(TOPIC, good, { ...BASE, lsn: "nope" }, NOW)).toThrow(/user property lsn: not an LSN/);
    expect(() => decodeChanges(TOPIC, good, { ...BASE, seq: "-1" }, NOW)).toThrow(/seq is "-1"/);
    expect(() => decodeChanges(TOPIC, good, { ...BASE, count: "2" }, NOW)).toThrow(/count says 2 events, the TeraEvent holds 1/);
    expect(() => decodeChanges(TOPIC, new Uint8Array([0xff, 0xff]), BASE, NOW)).toThrow(ChangeDecodeError);
  });

  it("gives the same key to the two spellings of one LSN", () => {
    const bytes = payload([{ type: DatabaseEvent_EventType.DB_CREATE, object: {} }]);
    const [a] = decodeChanges(TOPIC, bytes, { ...BASE, lsn: "0/16B3748" }, NOW);
    const [b] = decodeChanges(TOPIC, bytes, { ...BASE, lsn: "00000000/016B3748" }, NOW);
    expect(changeKey(a!)).toBe(changeKey(b!));
  });
});

describe("RecentKeys", () => {
  it("drops repeats within the window and forgets the oldest beyond it", () => {
    const recent = new RecentKeys(3);
    expect(["a", "b", "a", "c", "d"].map((k) => recent.seen(k))).toEqual([false, false, true, false, false]);
    expect(recent.size).toBe(3);
    expect(recent.seen("a")).toBe(false); // forgotten: it was the oldest when d came
    expect(recent.seen("d")).toBe(true);
    expect(() => new RecentKeys(0)).toThrow(/dedupe window 0/);
  });
});

function change(model: string, op: Change["op"], object: Record<string, unknown>): Change {
  return { model, op, object } as Change;
}

describe("invalidateCache with a Map", () => {
  it("deletes model:id on update and delete, leaves creates and other models alone, clears a model on truncate", async () => {
    const cache = new Map<string, string>([
      ["device:1", "d1"], ["device:2", "d2"], ["device:3", "d3"], ["devices:9", "x"], ["user:1", "u1"], ["site:1", "s1"],
    ]);
    const handle = invalidateCache(cache, { models: ["device", "user"] });
    await handle(change("device", "create", { id_device: 3 }));
    await handle(change("device", "update", { id_device: 1 }));
    await handle(change("user", "delete", { id_user: 1 }));
    await handle(change("site", "delete", { id_site: 1 }));
    expect([...cache.keys()].sort()).toEqual(["device:2", "device:3", "devices:9", "site:1"]);
    await handle(change("device", "truncate", {}));
    expect([...cache.keys()].sort()).toEqual(["devices:9", "site:1"]);
  });

  it("uses configured key fields and prefix, and clears the model when the key is missing", async () => {
    expect(cacheKeyOf(change("session_participant", "update", { id_session: 4, id_participant: 9 }), { keys: { session_participant: ["id_session", "id_participant"] }, prefix: "app:" })).toBe(
      "app:session_participant:4:9",
    );
    expect(cacheKeyOf(change("device", "update", { uuid: "x" }))).toBeNull();
    const cache = new Map([["device:1", 1], ["device:2", 2], ["user:1", 3]]);
    await invalidateCache(cache)(change("device", "update", {}));
    expect([...cache.keys()]).toEqual(["user:1"]);
  });

  it("refuses a cache it cannot clear", () => {
    expect(() => invalidateCache({ delete() {} } as never)).toThrow(/needs a cache with delete\(key\) and keys\(\)/);
  });
});

describe("topicFilters", () => {
  it("subscribes to each model's topic, every model, given topics, or shares them in a group", async () => {
    const { topicFilters } = await import("../../src/client/index.js");
    expect(topicFilters({ models: ["device", "user"] })).toEqual(["module/TeraServer/DatabaseModule/events/device", "module/TeraServer/DatabaseModule/events/user"]);
    expect(topicFilters({})).toEqual(["module/TeraServer/DatabaseModule/events/+"]);
    expect(topicFilters({ models: ["device"], group: "cache" })).toEqual(["$share/cache/module/TeraServer/DatabaseModule/events/device"]);
    expect(topicFilters({ models: ["device"], topics: ["site-a/devices"] })).toEqual(["site-a/devices"]);
    expect(() => topicFilters({ models: ["a.b"] })).toThrow(/invalid topic model "a.b"/);
    expect(() => topicFilters({ group: "a/b" })).toThrow(/group "a\/b" is not a valid shared subscription name/);
  });
});
