import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { RUN_SETTINGS } from "../../src/cli/run-settings.js";

const readme = readFileSync(join(import.meta.dirname, "..", "..", "README.md"), "utf8");

describe("README stays true", () => {
  it("documents every setting of run with its environment variable", () => {
    for (const setting of RUN_SETTINGS) {
      expect(readme, `--${setting.name}`).toContain(`| \`--${setting.name}\` |`);
      if (setting.env) expect(readme, setting.env).toContain(`\`${setting.env}\``);
    }
  });

  it("shows the command that runs tera-cdc and the one that runs the tests", () => {
    expect(readme).toMatch(/^npm start$/m);
    expect(readme).toMatch(/^npm test$/m);
  });
});
