import { ConfigError, parseSettings, type SettingSpec, type TypedSettings } from "../config.js";
import { withLocalServices } from "../embedded/local.js";

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

/**
 * A flags-only command's settings: "help" for `--help`, a ConfigError (exit 2) for a positional
 * argument, otherwise the validated values, typed by the command's settings table, with the
 * embedded default's services filled in (withLocalServices).
 */
export function flagsOnlySettings<const S extends readonly SettingSpec[]>(command: string, specs: S, argv: readonly string[], env: NodeJS.ProcessEnv = process.env): TypedSettings<S> | "help" {
  const parsed = parseSettings(specs, argv, env);
  if (parsed.help) return "help";
  if (parsed.positional.length > 0) throw new ConfigError(`unexpected argument "${parsed.positional[0]}": ${command} takes only flags`);
  return withLocalServices(specs, parsed.values);
}

/** flagsOnlySettings that prints the command's `--help` and returns null for it. */
export function flagsOnlyCommand<const S extends readonly SettingSpec[]>(
  command: string,
  specs: S,
  argv: string[],
  help: { usage: string; examples: readonly string[] },
): TypedSettings<S> | null {
  const values = flagsOnlySettings(command, specs, argv);
  if (values === "help") {
    process.stdout.write(helpText(help.usage, specs, help.examples));
    return null;
  }
  return values;
}

/** A setting without a default that this use of the command needs: its value, or a ConfigError naming the flag and its variable. */
export function required<V, const K extends keyof V & string>(specs: readonly SettingSpec[], values: V, name: K): NonNullable<V[K]> {
  const value = values[name];
  if (value === undefined || value === null) {
    const env = specs.find((s) => s.name === name)?.env;
    throw new ConfigError(`setting ${name} is missing: give --${name}${env ? ` or ${env}` : ""}`);
  }
  return value;
}
