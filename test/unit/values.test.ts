import { describe, expect, it } from "vitest";
import { TypeCatalog } from "../../src/decode/types.js";
import { formatArray, formatterFor } from "../../src/decode/values.js";

const types = new TypeCatalog();
const format = (oid: number, text: string) => formatterFor(types.ruleOf(oid))(text);

describe("value rules: PostgreSQL text form to JSON", () => {
  it("keeps integers of any size exact", () => {
    expect(format(20, "9223372036854775807")).toBe("9223372036854775807");
    expect(format(20, "-9223372036854775808")).toBe("-9223372036854775808");
    expect(format(23, "-5")).toBe("-5");
  });

  it("writes numeric as a string of its exact digits", () => {
    expect(format(1700, "12345678901234567890.000000000000000001")).toBe('"12345678901234567890.000000000000000001"');
    expect(format(1700, "NaN")).toBe('"NaN"');
  });

  it("writes float NaN and infinities as strings, other floats as numbers", () => {
    expect(format(701, "1.5")).toBe("1.5");
    expect(format(701, "1e+308")).toBe("1e+308");
    expect(format(701, "NaN")).toBe('"NaN"');
    expect(format(700, "-Infinity")).toBe('"-Infinity"');
    expect(JSON.parse(format(701, "-1.25e-05"))).toBe(-1.25e-5);
  });

  it("writes timestamptz as isoformat() in UTC with microseconds", () => {
    expect(format(1184, "2026-11-26 03:39:00.764686+00")).toBe('"2026-11-26T03:39:00.764686+00:00"');
    expect(format(1184, "2026-11-26 03:39:00+00")).toBe('"2026-11-26T03:39:00+00:00"');
    // PostgreSQL trims the fraction's trailing zeros; isoformat() writes six digits.
    expect(format(1184, "2026-01-02 03:04:05.12+00")).toBe('"2026-01-02T03:04:05.120000+00:00"');
    expect(format(1184, "2026-01-02 03:04:05.00001+00")).toBe('"2026-01-02T03:04:05.000010+00:00"');
    expect(format(1184, "1900-01-01 00:00:00+05:30:15")).toBe('"1900-01-01T00:00:00+05:30:15"');
    expect(format(1184, "infinity")).toBe('"infinity"');
    expect(format(1184, "0044-03-15 12:00:00+00 BC")).toBe('"0044-03-15 12:00:00+00 BC"');
  });

  it("writes timestamp without an offset and dates as YYYY-MM-DD", () => {
    expect(format(1114, "2026-11-26 03:39:00.000001")).toBe('"2026-11-26T03:39:00.000001"');
    expect(format(1114, "2026-11-26 03:39:00")).toBe('"2026-11-26T03:39:00"');
    expect(format(1114, "2026-11-26 03:39:00.1")).toBe('"2026-11-26T03:39:00.100000"');
    expect(format(1114, "10000-01-01 00:00:00")).toBe('"10000-01-01 00:00:00"');
    expect(format(1082, "2026-11-26")).toBe('"2026-11-26"');
  });

  it("embeds json and jsonb, and writes booleans, bytea and text", () => {
    expect(format(3802, '{"a": [1, "é"]}')).toBe('{"a": [1, "é"]}');
    expect(format(16, "t")).toBe("true");
    expect(format(16, "f")).toBe("false");
    expect(format(17, "\\xdeadbeef")).toBe(`"${Buffer.from([0xde, 0xad, 0xbe, 0xef]).toString("base64")}"`);
    expect(format(25, 'say "hi"\n')).toBe('"say \\"hi\\"\\n"');
  });

  it("writes arrays as JSON arrays of their element rule, with NULLs and several dimensions", () => {
    expect(format(1007, "{1,NULL,3}")).toBe("[1,null,3]");
    expect(format(1007, "{{1,2},{3,4}}")).toBe("[[1,2],[3,4]]");
    expect(format(1007, "{}")).toBe("[]");
    expect(format(1009, '{"a b","c\\"d",NULL,"NULL",plain}')).toBe('["a b","c\\"d",null,"NULL","plain"]');
    expect(format(1185, '{"2026-11-26 03:39:00.5+00"}')).toBe('["2026-11-26T03:39:00.500000+00:00"]');
    expect(format(1231, "{1.10,NaN}")).toBe('["1.10","NaN"]');
    expect(format(1007, "[0:1]={7,8}")).toBe("[7,8]");
    // array_out leaves Unicode spaces unquoted (they are data): they must survive (found by the oracle).
    expect(format(1009, "{\u2029a\u2028,\ufeffb}")).toBe(JSON.stringify(["\u2029a\u2028", "\ufeffb"]));
  });

  it("parses what it writes as JSON for nested text arrays", () => {
    const json = formatArray('{{"x,y","}"},{"\\\\",""}}', JSON.stringify);
    expect(JSON.parse(json)).toEqual([["x,y", "}"], ["\\", ""]]);
  });

  it("falls back to the text form for types it does not know", () => {
    expect(format(999_999, "(1,2)")).toBe('"(1,2)"');
  });

  it("follows domains to their base type and arrays of them", () => {
    const catalog = new TypeCatalog();
    catalog.add([
      { oid: 50_000, name: "positive_int", typtype: "d", elementOid: 0, baseOid: 23, category: "N", delimiter: "," },
      { oid: 50_001, name: "_positive_int", typtype: "b", elementOid: 50_000, baseOid: 0, category: "A", delimiter: "," },
      { oid: 50_002, name: "mood", typtype: "e", elementOid: 0, baseOid: 0, category: "E", delimiter: "," },
    ]);
    expect(formatterFor(catalog.ruleOf(50_000))("42")).toBe("42");
    expect(formatterFor(catalog.ruleOf(50_001))("{1,2}")).toBe("[1,2]");
    expect(formatterFor(catalog.ruleOf(50_002))("happy")).toBe('"happy"');
  });
});
