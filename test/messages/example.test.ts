// docs/messages.md points at scripts/messages/example.ts: run it so the example cannot rot.
import { execFileSync } from "node:child_process";
import { join } from "node:path";
import { expect, it } from "vitest";

const root = join(import.meta.dirname, "..", "..");

it("scripts/messages/example.ts runs and prints what docs/messages.md shows", () => {
  const output = execFileSync(join(root, "node_modules", ".bin", "tsx"), ["scripts/messages/example.ts"], {
    cwd: root,
    encoding: "utf8",
  });
  expect(output).toBe(
    [
      "publish 170 bytes on MQTT topic module/TeraServer/DatabaseModule/events/device",
      "fast path identical: true",
      'DB_CREATE device {"id_device":1,"device_name":"Tablette"}',
      "refused: truncated",
      "TeraMessage carries type.googleapis.com/opentera.protobuf.LogEvent",
      "TeraModuleMessage seq 1 carries type.googleapis.com/opentera.protobuf.RPCMessage",
      "",
    ].join("\n"),
  );
});
