import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { checkImportRules } from "../../scripts/import-rules.js";

const repository = resolve(dirname(fileURLToPath(import.meta.url)), "../..");

describe("import rules (README Layout, docs of scripts/import-rules.ts)", () => {
  it("src/ keeps every rule", () => {
    // On failure the list names each import that broke a rule (file:line imports "...": why).
    expect(checkImportRules(repository)).toEqual([]);
  });

  describe("the checker catches each kind of break", () => {
    const root = mkdtempSync(join(tmpdir(), "import-rules-"));
    afterAll(() => rmSync(root, { recursive: true, force: true }));
    const write = (files: Record<string, string>) => {
      rmSync(join(root, "src"), { recursive: true, force: true });
      for (const [name, text] of Object.entries(files)) {
        mkdirSync(dirname(join(root, name)), { recursive: true });
        writeFileSync(join(root, name), text);
      }
      return checkImportRules(root);
    };
    const base = {
      "src/index.ts": 'export * from "./client/index.js";\n',
      "src/client/index.ts": "export const x = 1;\n",
      "src/lsn.ts": "export type Lsn = bigint;\n",
    };

    it("a clean tree passes", () => {
      expect(write(base)).toEqual([]);
    });

    it("a pure unit importing the source (the old decode -> source/lsn)", () => {
      const problems = write({ ...base, "src/decode/pgoutput.ts": 'import type { Lsn } from "../source/lsn.js";\n', "src/source/lsn.ts": "export type Lsn = bigint;\n" });
      expect(problems.join("\n")).toContain('src/decode/pgoutput.ts:1 imports "../source/lsn.js"');
      expect(problems.join("\n")).toMatch(/upward/);
    });

    it("a pure unit doing I/O", () => {
      const problems = write({ ...base, "src/model/plan.ts": 'import { readFileSync } from "node:fs";\n' });
      expect(problems).toEqual([expect.stringContaining('src/model/plan.ts:1 imports "node:fs": model is pure')]);
    });

    it("the pipeline importing a sink instead of its ports, across lines", () => {
      const problems = write({ ...base, "src/pipeline/pipeline.ts": 'import {\n  type A,\n  B,\n} from "../sinks/mqtt/sink.js";\n', "src/sinks/mqtt/sink.ts": "export const B = 1; export type A = 1;\n" });
      expect(problems.join("\n")).toContain('src/pipeline/pipeline.ts:1 imports "../sinks/mqtt/sink.js": the pipeline reaches sinks only through its ports');
    });

    it("a loop between two units of one layer", () => {
      const problems = write({ ...base, "src/gateway/a.ts": 'import "../snapshot/b.js";\n', "src/snapshot/b.ts": 'import "../gateway/a.js";\n' });
      expect(problems).toEqual([expect.stringMatching(/a loop (gateway -> snapshot -> gateway|snapshot -> gateway -> snapshot)/)]);
    });

    it("the library entry reaching the logger, even through several files; a type-only import is fine", () => {
      const problems = write({
        ...base,
        "src/client/index.ts": 'import type { Logger } from "../ops/log.js";\nexport * from "./subscribe.js";\n',
        "src/client/subscribe.ts": 'import { createLogger } from "../ops/log.js";\n',
        "src/ops/log.ts": 'import pino from "pino";\n',
      });
      expect(problems).toEqual([
        expect.stringContaining("src/client/subscribe.ts:1 imports \"../ops/log.js\": the library entry loads src/ops/log.ts (src/index.ts -> src/client/index.ts -> src/client/subscribe.ts -> src/ops/log.ts)"),
        expect.stringContaining('src/ops/log.ts:1 imports "pino": the library entry loads pino'),
      ]);
    });

    it("an import quoted in a comment is not an import", () => {
      expect(write({ ...base, "src/decode/x.ts": '/**\n * import { pg } from "pg";\n */\n// import "node:net";\nexport const y = "mqtt://h";\n' })).toEqual([]);
    });
  });
});
