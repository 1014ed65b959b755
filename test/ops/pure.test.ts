import { describe, expect, it } from "vitest";
import { formatChecks, splitProblemFix } from "../../src/service/checks.js";
import { formatBytes, formatStatus } from "../../src/ops/status.js";
import { decodeTailEvents, formatTailLine } from "../../src/cli/tail.js";
import { decodeTeraEvent, encodeDatabaseTeraEvent, LogEvent_LogLevel, unpackAny } from "../../src/messages/index.js";
import { logEventMessage } from "../../src/ops/log-mqtt.js";
import { formatPretty } from "../../src/ops/log.js";
import { createMetrics } from "../../src/ops/metrics.js";

const TOPIC = "module.TeraServer.DatabaseModule.events.device";

describe("tail decoding", () => {
  it("turns a TeraEvent with MQTT 5 properties into a line with lsn, seq and the object", () => {
    const payload = encodeDatabaseTeraEvent(TOPIC, 1_700_000_000, [{ type: 2, objectType: "device", objectValue: '{"id_device":1,"device_name":"lamp"}' }]);
    const [event] = decodeTailEvents("module/TeraServer/DatabaseModule/events/device", payload, {
      lsn: "0/16B3748", seq: "3", op: "update", "commit-time": "2024-05-01T12:00:00.123456Z", xid: "750", table: "public.t_devices",
    });
    expect(formatTailLine(event!)).toBe('device update 2024-05-01T12:00:00.123456Z lsn=0/16B3748 seq=3 {"id_device":1,"device_name":"lamp"}');
    expect(event).toMatchObject({ xid: "750", table: "public.t_devices" });
  });

  it("numbers the events of a batched TeraEvent from the message's seq and tells truncate from delete", () => {
    const batch = encodeDatabaseTeraEvent(TOPIC, 1, [
      { type: 1, objectType: "device", objectValue: '{"id_device":1}' },
      { type: 3, objectType: "device", objectValue: '{"id_device":2}' },
    ]);
    const events = decodeTailEvents("t", batch, { seq: "4", op: "create,delete", lsn: "0/1" });
    expect(events.map((e) => [e.op, e.seq])).toEqual([["create", 4], ["delete", 5]]);
    const truncate = encodeDatabaseTeraEvent(TOPIC, 1, [{ type: 3, objectType: "device", objectValue: "{}" }]);
    expect(decodeTailEvents("t", truncate, { op: "truncate" })[0]!.op).toBe("truncate");
  });

  it("falls back to the header time without properties (MQTT 3.1.1) and refuses non-TeraEvents", () => {
    const payload = encodeDatabaseTeraEvent(TOPIC, 1_700_000_000.25, [{ type: 1, objectType: "device", objectValue: '{"id_device":1}' }]);
    expect(formatTailLine(decodeTailEvents("t", payload, undefined)[0]!)).toBe('device create 2023-11-14T22:13:20.250Z {"id_device":1}');
    expect(() => decodeTailEvents("t", new Uint8Array([0xff, 0xff]), undefined)).toThrow(/not a TeraEvent/);
  });

  it("tells a truncate from a delete without properties (MQTT 3.1.1): its object is empty, a delete's holds the keys (issue 16)", () => {
    const truncate = encodeDatabaseTeraEvent(TOPIC, 1, [{ type: 3, objectType: "device", objectValue: "{}" }]);
    expect(decodeTailEvents("t", truncate, undefined)[0]!.op).toBe("truncate");
    const remove = encodeDatabaseTeraEvent(TOPIC, 1, [{ type: 3, objectType: "device", objectValue: '{"id_device":2}' }]);
    expect(decodeTailEvents("t", remove, undefined)[0]!.op).toBe("delete");
  });
});

describe("check report", () => {
  it("splits a prerequisite message into the problem and its fix", () => {
    expect(splitProblemFix('role "app" lacks the REPLICATION attribute: run ALTER ROLE "app" WITH REPLICATION; as a superuser')).toEqual({
      problem: 'role "app" lacks the REPLICATION attribute',
      fix: 'ALTER ROLE "app" WITH REPLICATION; as a superuser',
    });
  });

  it("prints one line per check, the fix under it, and the totals", () => {
    const text = formatChecks([
      { verdict: "PASS", name: "wal_level", detail: "logical" },
      { verdict: "FAIL", name: "publication", detail: 'publication "p" does not exist', fix: 'CREATE PUBLICATION "p" FOR TABLE "public"."t";' },
    ]);
    expect(text).toBe(
      'PASS  wal_level    logical\nFAIL  publication  publication "p" does not exist\n                   fix: CREATE PUBLICATION "p" FOR TABLE "public"."t";\n\n1 passed, 1 failed, 0 warnings\n',
    );
  });
});

describe("status report", () => {
  it("prints sizes as PostgreSQL's pg_size_pretty does", () => {
    expect([formatBytes(0), formatBytes(1023), formatBytes(1536), formatBytes(5 * 1024 ** 3)]).toEqual(["0 bytes", "1023 bytes", "1.5 KiB", "5.0 GiB"]);
  });

  it("says when the slot does not exist and when the health URL does not answer", () => {
    const text = formatStatus({ slot: null, publication: { name: "p", tables: null }, health: { url: "http://h:1/healthz", error: "ECONNREFUSED" } });
    expect(text).toBe("slot: does not exist (tera-cdc run creates it)\npublication p: does not exist\ntera-cdc at http://h:1/healthz: not reachable (ECONNREFUSED)\n");
  });
});

describe("pretty logs", () => {
  it("formats a pino line for a terminal", () => {
    const line = JSON.stringify({ level: 40, time: Date.UTC(2024, 0, 1, 12, 0, 1, 234), msg: "broker unreachable", retryInMs: 500, table: "public.t x" });
    expect(formatPretty(line)).toBe('12:00:01.234 WARN  broker unreachable retryInMs=500 table="public.t x"\n');
    expect(formatPretty("not json")).toBe("not json\n");
  });
});

describe("metrics", () => {
  it("reads the counters at scrape time", async () => {
    const stats = {
      changes: 3, messages: 3, bytes: 300, transactions: 2, oversize: 1, rejected: 0, skipped: 0,
      confirmedLsn: 0x16b3748n, serverWalEnd: 0x16b3848n, lastCommitTime: Date.now() / 1000 - 2,
      byModelOp: new Map([["device\u0000create", 2], ["device\u0000delete", 1]]),
    };
    const metrics = createMetrics({ stats, inFlight: () => 4, reconnects: () => 1, streaming: () => true, startedAt: 1_700_000_000_000 }, { defaultMetrics: false });
    const text = await metrics.text();
    expect(text).toContain('tera_cdc_changes_published_total{model="device",op="create"} 2\n');
    expect(text).toContain('tera_cdc_changes_published_total{model="device",op="delete"} 1\n');
    expect(text).toContain("tera_cdc_bytes_published_total 300\n");
    expect(text).toContain("tera_cdc_messages_in_flight 4\n");
    expect(text).toContain(`tera_cdc_confirmed_lsn ${0x16b3748}\n`);
    expect(text).toContain("tera_cdc_replication_lag_bytes 256\n");
    expect(text).toContain("tera_cdc_reconnects_total 1\n");
    expect(text).toContain("tera_cdc_start_time_seconds 1700000000\n");
    expect(Number(/^tera_cdc_replication_lag_seconds (\S+)$/m.exec(text)![1])).toBeGreaterThanOrEqual(2);
    stats.byModelOp.set("device\u0000create", 5);
    expect(await metrics.text()).toContain('tera_cdc_changes_published_total{model="device",op="create"} 5\n');
  });
});

describe("logs as OpenTera LogEvents", () => {
  it("turns a pino line into a LogEvent in a TeraEvent on log/<level>", () => {
    const line = JSON.stringify({ level: 40, time: 1_700_000_000_500, msg: "broker unreachable", retryInMs: 500 });
    const message = logEventMessage(line, "tera-cdc")!;
    expect(message.topic).toBe("log/warning");
    const decoded = decodeTeraEvent(message.payload);
    if (!decoded.ok) throw decoded.error;
    expect(decoded.message.header).toMatchObject({ version: 1, topic: "log.warning", time: 1_700_000_000.5 });
    const unpacked = unpackAny(decoded.message.events[0]!);
    expect(unpacked.type).toBe("LogEvent");
    expect(unpacked.type === "LogEvent" && unpacked.message).toMatchObject({
      level: LogEvent_LogLevel.LOGLEVEL_WARNING,
      timestamp: 1_700_000_000.5,
      sender: "tera-cdc",
      message: 'broker unreachable {"retryInMs":500}',
    });
    expect(logEventMessage(JSON.stringify({ level: 60, time: 1, msg: "x" }), "s")!.topic).toBe("log/fatal");
    expect(logEventMessage("not json", "s")).toBeNull();
  });
});
