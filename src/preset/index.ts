import type { TableSettings } from "../model/plan.js";
import { openTeraPreset } from "./opentera.js";

/** Named bundles of tables and per-table settings (`--preset NAME`, `preset: NAME`). */
export const PRESET_NAMES = ["opentera"] as const;
export type PresetName = (typeof PRESET_NAMES)[number];

export interface TableSelection {
  /** `schema.table` names. */
  readonly tables: readonly string[];
  /** Keyed by `schema.table`. */
  readonly tableSettings: Readonly<Record<string, TableSettings>>;
}

export interface UserTables {
  /** `schema.table` names the user configured, if any. */
  readonly tables?: readonly string[];
  /**
   * True when the user's list is a selection (`--tables`, `TERA_CDC_TABLES`, a `tables:` list):
   * it replaces the preset's tables. False when the tables come from a `tables:` mapping of
   * per-table settings: those add to the preset's tables.
   */
  readonly tablesReplacePreset: boolean;
  readonly tableSettings: Readonly<Record<string, TableSettings>>;
}

export function presetTables(name: PresetName): TableSelection {
  switch (name) {
    case "opentera":
      return openTeraPreset();
  }
}

/**
 * The user's settings laid over a preset's: the user's table selection wins, and for each table
 * every setting the user gives (model, columns, exclude, delete-keys, topic) replaces the preset's.
 */
export function mergePreset(preset: TableSelection, user: UserTables): TableSelection {
  let tables: string[];
  if (user.tables && user.tablesReplacePreset) tables = [...user.tables];
  else tables = [...new Set([...preset.tables, ...(user.tables ?? [])])];
  const tableSettings: Record<string, TableSettings> = {};
  for (const table of tables) {
    const merged: Record<string, unknown> = { ...preset.tableSettings[table] };
    for (const [key, value] of Object.entries(user.tableSettings[table] ?? {})) {
      if (value !== undefined) merged[key] = value;
    }
    tableSettings[table] = merged as TableSettings;
  }
  return { tables, tableSettings };
}
