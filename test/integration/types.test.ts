import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startCdc, type CdcProcess } from "../harness/cdc.js";
import { startConsumer, type Consumer } from "../harness/consumer.js";
import { useClusterAndBroker } from "../harness/servers.js";

/**
 * Every built-in type the value rules touch, with edge values, through a real WAL stream: each
 * row's published JSON must follow the documented rule, and none may stop the stream.
 */
const [pg, broker] = useClusterAndBroker();
let cdc: CdcProcess;
let consumer: Consumer;

const COLUMNS: [name: string, type: string][] = [
  ["c_bool", "boolean"],
  ["c_int2", "smallint"],
  ["c_int4", "integer"],
  ["c_int8", "bigint"],
  ["c_numeric", "numeric"],
  ["c_float4", "real"],
  ["c_float8", "double precision"],
  ["c_money", "money"],
  ["c_text", "text"],
  ["c_varchar", "varchar(20)"],
  ["c_char", "char(3)"],
  ["c_bytea", "bytea"],
  ["c_date", "date"],
  ["c_time", "time"],
  ["c_timetz", "timetz"],
  ["c_ts", "timestamp"],
  ["c_tstz", "timestamptz"],
  ["c_interval", "interval"],
  ["c_uuid", "uuid"],
  ["c_inet", "inet"],
  ["c_json", "json"],
  ["c_jsonb", "jsonb"],
  ["c_int_arr", "int[]"],
  ["c_text_arr", "text[]"],
  ["c_tstz_arr", "timestamptz[]"],
  ["c_mood", "mood"],
  ["c_mood_arr", "mood[]"],
  ["c_positive", "positive_int"],
  ["c_point", "pair"],
  ["c_range", "int4range"],
  ["c_bits", "bit(4)"],
  ["c_varbits", "varbit"],
  ["c_tsvector", "tsvector"],
];

beforeAll(async () => {
  await pg.query(`
    CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
    CREATE DOMAIN positive_int AS integer CHECK (VALUE > 0);
    CREATE TYPE pair AS (x int, y text);
    CREATE TABLE t_values (id_value int PRIMARY KEY, ${COLUMNS.map(([n, t]) => `${n} ${t}`).join(", ")});
  `);
  consumer = await startConsumer(broker.url, "module/TeraServer/DatabaseModule/events/value");
  cdc = await startCdc({ databaseUrl: pg.url, mqttUrl: broker.url, args: ["--tables", "t_values"] });
}, 90_000);

afterAll(async () => {
  await cdc?.stop();
  await consumer?.close();
});

/** Inserts one row (id plus the given column values as SQL literals) and returns its published object. */
async function published(values: Record<string, string>): Promise<Record<string, unknown>> {
  const id = consumer.events.length + 1;
  const names = Object.keys(values);
  await pg.query(`INSERT INTO t_values (id_value${names.map((n) => `, ${n}`).join("")}) VALUES (${id}${names.map((n) => `, ${values[n]}`).join("")})`);
  const events = await consumer.waitForCount(id);
  const event = events[id - 1]!;
  expect(event.object.id_value).toBe(id);
  return event.object;
}

describe("PostgreSQL types in object_value", () => {
  it("publishes every column, NULL as null, keys in alphabetical order", async () => {
    const object = await published({});
    const keys = Object.keys(object);
    expect(keys).toEqual([...keys].sort());
    expect(keys).toHaveLength(COLUMNS.length + 1);
    for (const [name] of COLUMNS) expect(object[name]).toBeNull();
  });

  it("keeps integers exact and numerics as exact strings", async () => {
    const o = await published({
      c_int2: "-32768",
      c_int4: "2147483647",
      c_int8: "9223372036854775807",
      c_numeric: "'123456789012345678901234567890.123456789012345678901234567890'",
    });
    expect(o.c_int2).toBe(-32768);
    expect(o.c_int4).toBe(2147483647);
    const raw = consumer.events.at(-1)!.objectText;
    expect(raw).toContain('"c_int8":9223372036854775807');
    expect(o.c_numeric).toBe("123456789012345678901234567890.123456789012345678901234567890");
    const nan = await published({ c_numeric: "'NaN'", c_int8: "-9223372036854775808" });
    expect(nan.c_numeric).toBe("NaN");
    expect(consumer.events.at(-1)!.objectText).toContain('"c_int8":-9223372036854775808');
  });

  it("writes floats as numbers and NaN or infinities as strings", async () => {
    const o = await published({ c_float4: "'1.5'", c_float8: "'2.2250738585072014e-308'" });
    expect(o.c_float4).toBe(1.5);
    expect(o.c_float8).toBe(2.2250738585072014e-308);
    const edges = await published({ c_float4: "'NaN'", c_float8: "'-Infinity'" });
    expect(edges.c_float4).toBe("NaN");
    expect(edges.c_float8).toBe("-Infinity");
  });

  it("writes times as Python's isoformat() with microseconds, and keeps infinities and far years as text", async () => {
    const o = await published({
      c_tstz: "'2026-11-26 04:39:00.764686+01'",
      c_ts: "'2026-11-26 03:39:00.000001'",
      c_date: "'2026-11-26'",
      c_time: "'03:39:00.5'",
      c_tstz_arr: "ARRAY['2026-01-01 00:00:00+00'::timestamptz, NULL]",
    });
    expect(o.c_tstz).toBe("2026-11-26T03:39:00.764686+00:00");
    expect(o.c_ts).toBe("2026-11-26T03:39:00.000001");
    expect(o.c_date).toBe("2026-11-26");
    expect(o.c_time).toBe("03:39:00.5");
    expect(o.c_tstz_arr).toEqual(["2026-01-01T00:00:00+00:00", null]);
    const whole = await published({ c_tstz: "'2026-11-26 03:39:00+00'" });
    expect(whole.c_tstz).toBe("2026-11-26T03:39:00+00:00");
    const edges = await published({ c_tstz: "'infinity'", c_ts: "'-infinity'", c_date: "'0044-03-15 BC'" });
    expect(edges.c_tstz).toBe("infinity");
    expect(edges.c_ts).toBe("-infinity");
    expect(edges.c_date).toBe("0044-03-15 BC");
    const far = await published({ c_ts: "'10000-01-01 00:00:00'", c_tstz: "'9999-12-31 23:59:59.999999+00'" });
    expect(far.c_ts).toBe("10000-01-01 00:00:00");
    expect(far.c_tstz).toBe("9999-12-31T23:59:59.999999+00:00");
  });

  it("embeds json and jsonb as JSON, with unicode escapes intact", async () => {
    const o = await published({ c_json: `'{"b": [1, 2.5, null], "a": "\\u00e9\\ud83d\\ude80"}'`, c_jsonb: `'{"z": {"y": true}, "s": "line\\nbreak"}'` });
    expect(o.c_json).toEqual({ b: [1, 2.5, null], a: "é🚀" });
    expect(o.c_jsonb).toEqual({ z: { y: true }, s: "line\nbreak" });
  });

  it("writes bytea as base64, text as is and arrays as JSON arrays with NULLs and dimensions", async () => {
    const o = await published({
      c_bytea: "'\\x00ff10'::bytea",
      c_text: "E'quote \" backslash \\\\ tab \\t é'",
      c_char: "'ab'",
      c_int_arr: "'{{1,2},{3,NULL}}'",
      c_text_arr: `ARRAY['a,b', 'c"d', NULL, 'NULL', '']`,
    });
    expect(o.c_bytea).toBe(Buffer.from([0, 255, 16]).toString("base64"));
    expect(o.c_text).toBe('quote " backslash \\ tab \t é');
    expect(o.c_char).toBe("ab ");
    expect(o.c_int_arr).toEqual([[1, 2], [3, null]]);
    expect(o.c_text_arr).toEqual(["a,b", 'c"d', null, "NULL", ""]);
    const empty = await published({ c_int_arr: "'{}'", c_text_arr: "'{}'" });
    expect(empty.c_int_arr).toEqual([]);
    expect(empty.c_text_arr).toEqual([]);
  });

  it("writes enums, domains, composites, ranges and the other types by their rule", async () => {
    const o = await published({
      c_mood: "'happy'",
      c_mood_arr: "'{sad,ok}'",
      c_positive: "42",
      c_point: "ROW(1, 'x y')",
      c_range: "'[1,10)'",
      c_bits: "B'1010'",
      c_varbits: "B'101'",
      c_tsvector: "'fat cat'",
      c_interval: "'1 day 02:03:04.5'",
      c_uuid: "'a7ae1ea6-8b0e-4d5e-9b0c-2f4b7c0a0001'",
      c_inet: "'192.168.0.1/24'",
      c_money: "12.5",
      c_timetz: "'03:39:00+02'",
    });
    expect(o.c_mood).toBe("happy");
    expect(o.c_mood_arr).toEqual(["sad", "ok"]);
    expect(o.c_positive).toBe(42);
    expect(o.c_point).toBe('(1,"x y")');
    expect(o.c_range).toBe("[1,10)");
    expect(o.c_bits).toBe("1010");
    expect(o.c_varbits).toBe("101");
    expect(o.c_tsvector).toBe("'cat' 'fat'");
    expect(o.c_interval).toBe("1 day 02:03:04.5");
    expect(o.c_uuid).toBe("a7ae1ea6-8b0e-4d5e-9b0c-2f4b7c0a0001");
    expect(o.c_inet).toBe("192.168.0.1/24");
    expect(o.c_money).toBe("$12.50");
    expect(o.c_timetz).toBe("03:39:00+02");
  });

  it("keeps streaming after a type created while it runs", async () => {
    await pg.query("CREATE TYPE shade AS ENUM ('light', 'dark'); ALTER TABLE t_values ADD COLUMN c_shade shade, ADD COLUMN c_shades shade[]");
    const o = await published({ c_shade: "'dark'", c_shades: "'{light,dark}'" });
    expect(o.c_shade).toBe("dark");
    expect(o.c_shades).toEqual(["light", "dark"]);
  });
});
