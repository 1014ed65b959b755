import { describe, expect, it } from "vitest";
import { checkFilter, describeFilter, FILTER_LIMITS, parseFilterJson, parseFriendlyFilter } from "../../src/snapshot/filter.js";

const COLUMNS = ["id_device", "id_site", "device_name", "device_enabled"];

describe("the friendly --where syntax", () => {
  it("parses conditions joined by and, every operator, every kind of value", () => {
    expect(parseFriendlyFilter("id_site = 3")).toEqual([{ column: "id_site", op: "=", value: 3 }]);
    expect(parseFriendlyFilter("id_site in (1, 2,3) AND device_name is not null and device_enabled = true and \"Odd\"\"Name\" != 'it''s' and x is null and y >= -1.5e2 and z < 0 and w <= .5 and v > 'a'")).toEqual([
      { column: "id_site", op: "in", value: [1, 2, 3] },
      { column: "device_name", op: "is not null" },
      { column: "device_enabled", op: "=", value: true },
      { column: 'Odd"Name', op: "<>", value: "it's" },
      { column: "x", op: "is null" },
      { column: "y", op: ">=", value: -150 },
      { column: "z", op: "<", value: 0 },
      { column: "w", op: "<=", value: 0.5 },
      { column: "v", op: ">", value: "a" },
    ]);
  });
  it("refuses SQL, with one line saying what to write instead", () => {
    const cases: [string, RegExp][] = [
      ["id_device = 1 AND CAST((SELECT user_password FROM t_users) AS int) = 1", /"\(" is not an operator/],
      ["id_site = 3 or 1 = 1", /"or" after a condition: join conditions with and/],
      ["id_site = 3; DROP TABLE t", /unexpected ";"/],
      ["id_site = pg_sleep(25)", /"pg_sleep" is not a value/],
      ["id_site like 'a%'", /"like" is not an operator/],
      ["id_site = 'open", /unterminated 'text'/],
      ["id_site =", /ends early: a value expected/],
      ["id_site in 1", /"in" takes a list in parentheses/],
      ["id_site is 3", /must be followed by null or not null/],
      ["id_site = 1 -- c", /unexpected "-"|is not a value/],
    ];
    for (const [text, error] of cases) expect(() => parseFriendlyFilter(text), text).toThrow(error);
  });
});

describe("checking a filter from the wire", () => {
  it("keeps a good filter and describes it without SQL", () => {
    const filter = parseFilterJson('[{"column":"id_site","op":"in","value":[1,"2"]},{"column":"device_name","op":"is null"}]', COLUMNS);
    expect(filter).toEqual([{ column: "id_site", op: "in", value: [1, "2"] }, { column: "device_name", op: "is null" }]);
    expect(describeFilter(filter)).toBe('id_site in (1, "2") and device_name is null');
  });
  it("refuses columns that are not published, unknown operators, bad shapes and oversize parts", () => {
    const long = "x".repeat(FILTER_LIMITS.valueLength + 1);
    const cases: [unknown, RegExp][] = [
      ["id_site = 3", /must be a JSON list/],
      [[], /no conditions/],
      [[{ column: "user_password", op: "=", value: "x" }], /column "user_password" is not one of the model's published columns: id_device, id_site, device_name, device_enabled/],
      [[{ column: "id_site) OR (1=1", op: "=", value: 1 }], /is not one of the model's published columns/],
      [[{ column: "id_site", op: "= 1 OR 1 =", value: 1 }], /op must be one of/],
      [[{ column: "id_site", op: "=", value: { $gt: 1 } }], /a value must be a string, a number or a boolean/],
      [[{ column: "id_site", op: "=", value: null }], /needs a value \(use "is null"/],
      [[{ column: "id_site", op: "=" }], /needs a value/],
      [[{ column: "id_site", op: "is null", value: 1 }], /takes no value/],
      [[{ column: "id_site", op: "in", value: [] }], /non-empty list/],
      [[{ column: "id_site", op: "in", value: Array(FILTER_LIMITS.inValues + 1).fill(1) }], /at most 100 values/],
      [[{ column: "id_site", op: "=", value: long }], /at most 256 characters/],
      [[{ column: "id_site", op: "=", value: "a\u0000b" }], /NUL/],
      [[{ column: "id_site", op: "=", value: 1, sql: "pg_sleep(1)" }], /unknown key "sql"/],
      [Array(FILTER_LIMITS.conditions + 1).fill({ column: "id_site", op: "is null" }), /at most 16/],
      [["id_site"], /must be an object/],
    ];
    for (const [raw, error] of cases) expect(() => checkFilter(raw, COLUMNS), JSON.stringify(raw).slice(0, 80)).toThrow(error);
    expect(() => parseFilterJson("{nope", COLUMNS)).toThrow(/not JSON/);
    expect(() => parseFilterJson("[1e400]", COLUMNS)).toThrow(/must be an object/);
    expect(() => checkFilter([{ column: "id_site", op: "=", value: Number.POSITIVE_INFINITY }], COLUMNS)).toThrow(/finite/);
  });
  it("round-trips the friendly syntax through JSON to the same checked filter", () => {
    const friendly = parseFriendlyFilter("id_site in (1, 2) and device_name <> 'x' and device_enabled = false");
    expect(parseFilterJson(JSON.stringify(friendly), COLUMNS)).toEqual(friendly);
  });
});
