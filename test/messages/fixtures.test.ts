// Fixtures written by Google's runtime (scripts/messages/make-fixtures.py): our bytes must equal
// theirs, and theirs must decode here to the values they describe.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { fromCanonicalJson } from "./support/canonical-json.js";
import { decodeMessage, encodeMessage, KNOWN_MESSAGE_NAMES, type KnownMessageName, unpackAny, Value } from "./support/imports.js";

const fixtureDir = join(import.meta.dirname, "..", "fixtures", "messages");
interface FixtureCase {
  case: string;
  message: KnownMessageName;
  file: string;
  json: Record<string, unknown>;
}
const cases = (JSON.parse(readFileSync(join(fixtureDir, "cases.json"), "utf8")) as { cases: FixtureCase[] }).cases;

describe("fixtures from python3-protobuf", () => {
  it("cover every message and every oneof case of Value", () => {
    expect(new Set(cases.map((c) => c.message))).toEqual(new Set(KNOWN_MESSAGE_NAMES));
    const valueCases = new Set(
      cases.filter((c) => c.message === "Value").map((c) => Value.fromJSON(c.json).argValue?.$case),
    );
    expect(valueCases).toEqual(
      new Set(["doubleValue", "floatValue", "intValue", "uintValue", "boolValue", "bytesValue", "stringValue"]),
    );
  });

  it.each(cases)("$case: our encoding of the described values equals Google's bytes", (fixture) => {
    const message = fromCanonicalJson(fixture.message, fixture.json);
    const expected = new Uint8Array(readFileSync(join(fixtureDir, fixture.file)));
    expect(Buffer.from(encodeMessage(message)).toString("hex")).toBe(Buffer.from(expected).toString("hex"));
  });

  it.each(cases)("$case: Google's bytes decode here to the described values", (fixture) => {
    const bytes = new Uint8Array(readFileSync(join(fixtureDir, fixture.file)));
    const result = decodeMessage(fixture.message, bytes);
    expect(result.ok, result.ok ? "" : result.error.message).toBe(true);
    if (!result.ok) return;
    expect(result.message).toEqual(fromCanonicalJson(fixture.message, fixture.json));
  });

  it("unpacks every event of the TeraEvent fixture to its type", () => {
    const result = decodeMessage("TeraEvent", new Uint8Array(readFileSync(join(fixtureDir, "TeraEvent.bin"))));
    if (!result.ok) throw result.error;
    expect(result.message.header?.topic).toBe("module.TeraServer.DatabaseModule.events.device");
    const unpacked = result.message.events.map((any) => unpackAny(any));
    expect(unpacked.map((u) => u.type)).toEqual(["DatabaseEvent", "DeviceEvent", "UserEvent"]);
    const first = unpacked[0];
    expect(first?.type === "DatabaseEvent" && first.message.objectValue).toContain("Capteur d'été ☃ 🚀");
  });
});
