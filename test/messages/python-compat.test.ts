// Our bytes, read by Google's runtimes: python3-protobuf (C++ backed) and protoc --decode/--encode,
// through scripts/messages/check-encodings.py. Fails, rather than skips, without those packages.
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { afterAll, describe, expect, it } from "vitest";
import { messageArbitraries } from "./support/arbitraries.js";
import { fromCanonicalJson, toCanonicalJson } from "./support/canonical-json.js";
import { encodeMessage, KNOWN_MESSAGE_NAMES, type KnownMessage, type KnownMessageName } from "./support/imports.js";
import { findProtobufPython } from "./support/python.js";

const root = join(import.meta.dirname, "..", "..");
const checkScript = join(root, "scripts", "messages", "check-encodings.py");
const workDir = mkdtempSync(join(tmpdir(), "tera-messages-py-"));
afterAll(() => rmSync(workDir, { recursive: true, force: true }));

interface Case {
  case: string;
  message: KnownMessageName;
  json: Record<string, unknown>;
}

function runChecker(label: string, cases: Array<Case & { value: KnownMessage }>) {
  const python = findProtobufPython();
  const dir = join(workDir, label);
  mkdirSync(dir, { recursive: true });
  const described = cases.map(({ value, ...c }, index) => {
    const file = `${index}.bin`;
    writeFileSync(join(dir, file), encodeMessage(value), { flag: "w" });
    return { ...c, file };
  });
  writeFileSync(join(dir, "cases.json"), JSON.stringify({ cases: described }));
  const run = spawnSync(python, [checkScript, join(dir, "cases.json")], { encoding: "utf8", timeout: 120_000 });
  const summary = run.stdout.trim().split("\n").at(-1) ?? "";
  return { status: run.status, output: `${run.stdout}\n${run.stderr}`, summary };
}

function checkInPython(label: string, cases: Array<Case & { value: KnownMessage }>): void {
  const run = runChecker(label, cases);
  expect(run.status, run.output).toBe(0);
  expect(JSON.parse(run.summary)).toEqual({ checked: cases.length, failed: 0 });
}

describe("our encodings read by Google's runtime", () => {
  it("python3 with google.protobuf and protoc are installed", () => {
    expect(() => findProtobufPython()).not.toThrow();
  });

  it("the checker reports bytes that do not hold the described values", () => {
    const value = fromCanonicalJson("StopSessionEvent", { session_uuid: "a", service_uuid: "b" });
    const run = runChecker("negative", [
      { case: "swapped", message: "StopSessionEvent", json: { session_uuid: "b", service_uuid: "a" }, value },
    ]);
    expect(run.status).toBe(1);
    expect(run.output).toContain("FAIL swapped: decoded values differ");
  });

  it("the fixture values, encoded here, decode in Python and protoc to the same values", () => {
    const fixtureDir = join(root, "test", "fixtures", "messages");
    const fixtures = (JSON.parse(readFileSync(join(fixtureDir, "cases.json"), "utf8")) as { cases: Case[] }).cases;
    checkInPython(
      "fixtures",
      fixtures.map((c) => ({ ...c, value: fromCanonicalJson(c.message, c.json) })),
    );
  });

  it("random instances of every message, encoded here, decode in Python and protoc to the same values", () => {
    const arbitraries = messageArbitraries({ nan: false });
    const cases = KNOWN_MESSAGE_NAMES.flatMap((name) =>
      fc.sample(arbitraries[name] as fc.Arbitrary<KnownMessage>, { numRuns: 12, seed: 20240417 }).map((value, index) => ({
        case: `${name}-${index}`,
        message: name,
        json: toCanonicalJson(value),
        value,
      })),
    );
    checkInPython("random", cases);
  });
});
