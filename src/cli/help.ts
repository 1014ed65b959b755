import type { SettingSpec } from "../config.js";

/** `--help` text of a command from its settings: flag, environment variable, default, meaning. */
export function helpText(usage: string, specs: readonly SettingSpec[], examples: readonly string[]): string {
  const rows = specs.map((s) => {
    const flag = `--${s.name}`;
    const env = s.env ? ` (${s.env})` : "";
    const def = s.default !== undefined ? ` [default: ${Array.isArray(s.default) ? s.default.join(",") : s.default}]` : "";
    return `  ${flag}${env}\n      ${s.help}${def}`;
  });
  return `${usage}\n\nFlags (flag > environment > --config FILE > default):\n  --config FILE\n      YAML or JSON file with the settings below (same names) and per-table settings\n${rows.join("\n")}\n  --help\n      this text\n\nExamples:\n${examples.map((e) => `  ${e}`).join("\n")}\n`;
}
