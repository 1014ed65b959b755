// The validator's table (src/messages/wire-schema.ts) against buf's compiled descriptors of proto/.
import { execFileSync } from "node:child_process";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { MESSAGE_SHAPES } from "../../src/messages/wire-schema.js";

const root = join(import.meta.dirname, "..", "..");

interface FieldDescriptor {
  name: string;
  number: number;
  label?: string;
  type: string;
  typeName?: string;
}
interface MessageDescriptor {
  name: string;
  field?: FieldDescriptor[];
  nestedType?: MessageDescriptor[];
}

const WIRE: Record<string, number> = {
  TYPE_DOUBLE: 1, TYPE_FLOAT: 5, TYPE_INT64: 0, TYPE_UINT64: 0, TYPE_INT32: 0, TYPE_UINT32: 0, TYPE_BOOL: 0,
  TYPE_ENUM: 0, TYPE_STRING: 2, TYPE_BYTES: 2, TYPE_MESSAGE: 2,
};

function describeProtos(): Map<string, string[]> {
  const json = execFileSync(join(root, "node_modules", ".bin", "buf"), ["build", "proto", "-o", "-#format=json"], {
    cwd: root,
    encoding: "utf8",
  });
  const files = (JSON.parse(json) as { file: Array<{ package?: string; messageType?: MessageDescriptor[] }> }).file;
  const shapes = new Map<string, string[]>();
  const visit = (prefix: string, message: MessageDescriptor) => {
    const fullName = `${prefix}.${message.name}`;
    shapes.set(
      fullName,
      (message.field ?? []).map((f) => {
        const content = f.type === "TYPE_MESSAGE" ? ` ${f.typeName?.replace(/^\./, "")}` : f.type === "TYPE_STRING" ? " string" : f.type === "TYPE_BYTES" ? " bytes" : "";
        return `${f.number} ${f.name} wire${WIRE[f.type]}${content}${f.label === "LABEL_REPEATED" ? " repeated" : ""}`;
      }),
    );
    for (const nested of message.nestedType ?? []) visit(fullName, nested);
  };
  for (const file of files) for (const message of file.messageType ?? []) visit(file.package ?? "", message);
  return shapes;
}

describe("wire schema", () => {
  it("matches the descriptors buf compiles from proto/, field by field", () => {
    const compiled = describeProtos();
    const ours = new Map(
      [...MESSAGE_SHAPES].map(([name, shape]) => [
        name,
        [...shape.fields].map(([number, f]) => {
          const content = f.wire === 2 ? (f.content === "message" ? ` ${f.message}` : ` ${f.content}`) : "";
          return `${number} ${f.name} wire${f.wire}${content}${f.repeated ? " repeated" : ""}`;
        }),
      ]),
    );
    expect(ours).toEqual(compiled);
  });
});
