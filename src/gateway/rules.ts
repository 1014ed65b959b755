import { readFileSync } from "node:fs";
import YAML from "yaml";
/**
 * Who may see what: per-model access rules evaluated against a verified token's claims (pure).
 *
 * Rules file (YAML or JSON):
 *
 *   models:
 *     device:
 *       keys: [id_device]                    # the object's key columns (default id_<model>)
 *       require:                             # model-level: every condition must hold (default: any token)
 *         - { claim: scope, includes: devices:read }
 *       rows:                                # row-level: every rule must hold (default: every row)
 *         - { column: id_site, in-claim: sites }
 *       all-rows-if:                         # lifts the row rules when every condition holds
 *         - { claim: role, equals: admin }
 *     user:
 *       rows:
 *         - { column: id_user, equals-claim: sub }
 *
 * A model that is not in the file is visible to nobody. A row whose rule column is missing from
 * the object (or null) is not visible: rules fail closed.
 */

export type Claims = Readonly<Record<string, unknown>>;

export type ClaimCondition =
  | { readonly claim: string; readonly equals: string | number | boolean }
  | { readonly claim: string; readonly includes: string | number };

export type RowRule =
  | { readonly column: string; readonly inClaim: string }
  | { readonly column: string; readonly equalsClaim: string }
  | { readonly column: string; readonly equals: string | number | boolean };

export interface ModelRules {
  readonly model: string;
  readonly keys: readonly string[];
  readonly require: readonly ClaimCondition[];
  readonly rows: readonly RowRule[];
  readonly allRowsIf: readonly ClaimCondition[] | null;
}

export interface AccessRules {
  readonly models: ReadonlyMap<string, ModelRules>;
}

/** A rules file that does not follow the format; the message names the place and the fix. */
export class RulesError extends Error {
  override readonly name = "RulesError";
}

const MODEL_KEYS = new Set(["keys", "require", "rows", "all-rows-if"]);
const MODEL_NAME = /^[A-Za-z0-9_-]+$/;

type Scalar = string | number | boolean;

function isScalar(value: unknown): value is Scalar {
  return typeof value === "string" || typeof value === "number" || typeof value === "boolean";
}

function parseCondition(raw: unknown, where: string): ClaimCondition {
  if (raw === null || typeof raw !== "object" || Array.isArray(raw)) throw new RulesError(`${where} must be a mapping like { claim: role, equals: admin }`);
  const r = raw as Record<string, unknown>;
  if (typeof r.claim !== "string" || r.claim === "") throw new RulesError(`${where}.claim must be a claim name`);
  const extra = Object.keys(r).filter((k) => !["claim", "equals", "includes"].includes(k));
  if (extra.length > 0) throw new RulesError(`${where}: unknown key ${extra[0]}: allowed are claim, equals, includes`);
  if ("equals" in r === "includes" in r) throw new RulesError(`${where} needs exactly one of equals or includes`);
  if ("equals" in r) {
    if (!isScalar(r.equals)) throw new RulesError(`${where}.equals must be a string, number or boolean`);
    return { claim: r.claim, equals: r.equals };
  }
  if (typeof r.includes !== "string" && typeof r.includes !== "number") throw new RulesError(`${where}.includes must be a string or number`);
  return { claim: r.claim, includes: r.includes };
}

function parseRowRule(raw: unknown, where: string): RowRule {
  if (raw === null || typeof raw !== "object" || Array.isArray(raw)) throw new RulesError(`${where} must be a mapping like { column: id_site, in-claim: sites }`);
  const r = raw as Record<string, unknown>;
  if (typeof r.column !== "string" || r.column === "") throw new RulesError(`${where}.column must be a column name`);
  const kinds = ["in-claim", "equals-claim", "equals"].filter((k) => k in r);
  const extra = Object.keys(r).filter((k) => k !== "column" && !kinds.includes(k));
  if (extra.length > 0) throw new RulesError(`${where}: unknown key ${extra[0]}: allowed are column and one of in-claim, equals-claim, equals`);
  if (kinds.length !== 1) throw new RulesError(`${where} needs exactly one of in-claim, equals-claim, equals`);
  const value = r[kinds[0]!];
  if (kinds[0] === "equals") {
    if (!isScalar(value)) throw new RulesError(`${where}.equals must be a string, number or boolean`);
    return { column: r.column, equals: value };
  }
  if (typeof value !== "string" || value === "") throw new RulesError(`${where}.${kinds[0]} must be a claim name`);
  return kinds[0] === "in-claim" ? { column: r.column, inClaim: value } : { column: r.column, equalsClaim: value };
}

function parseList<T>(raw: unknown, where: string, item: (x: unknown, w: string) => T): T[] {
  if (raw === undefined || raw === null) return [];
  if (!Array.isArray(raw)) throw new RulesError(`${where} must be a list`);
  return raw.map((x, i) => item(x, `${where}[${i}]`));
}

/** Validates a parsed rules document (from YAML or JSON). `source` names the file in errors. */
/** The rules in a YAML or JSON file (RulesError naming the file and the problem). */
export function readRulesFile(path: string): AccessRules {
  let doc: unknown;
  try {
    doc = YAML.parse(readFileSync(path, "utf8"));
  } catch (error) {
    throw new RulesError(`${path} is not valid YAML or JSON: ${(error as Error).message.split("\n")[0]}`);
  }
  return parseRules(doc, path);
}

export function parseRules(doc: unknown, source = "rules"): AccessRules {
  if (doc === null || typeof doc !== "object" || Array.isArray(doc)) throw new RulesError(`${source} must be a mapping with a models: key`);
  const top = doc as Record<string, unknown>;
  const unknownTop = Object.keys(top).filter((k) => k !== "models");
  if (unknownTop.length > 0) throw new RulesError(`${source}: unknown key ${unknownTop[0]}: the file holds only models:`);
  const rawModels = top.models;
  if (rawModels === null || typeof rawModels !== "object" || Array.isArray(rawModels)) {
    throw new RulesError(`${source}: models must be a mapping of model name to its rules`);
  }
  const models = new Map<string, ModelRules>();
  for (const [model, raw] of Object.entries(rawModels as Record<string, unknown>)) {
    const where = `${source}: models.${model}`;
    if (!MODEL_NAME.test(model)) throw new RulesError(`${where}: a model name has only letters, digits, _ and -`);
    const r = raw === null || raw === undefined ? {} : raw;
    if (typeof r !== "object" || Array.isArray(r)) throw new RulesError(`${where} must be a mapping (keys, require, rows, all-rows-if)`);
    const m = r as Record<string, unknown>;
    const extra = Object.keys(m).filter((k) => !MODEL_KEYS.has(k));
    if (extra.length > 0) throw new RulesError(`${where}: unknown key ${extra[0]}: allowed are ${[...MODEL_KEYS].join(", ")}`);
    const keys = m.keys === undefined ? [`id_${model}`] : parseList(m.keys, `${where}.keys`, (x, w) => {
      if (typeof x !== "string" || x === "") throw new RulesError(`${w} must be a column name`);
      return x;
    });
    if (keys.length === 0) throw new RulesError(`${where}.keys must name at least one column`);
    models.set(model, {
      model,
      keys,
      require: parseList(m.require, `${where}.require`, parseCondition),
      rows: parseList(m.rows, `${where}.rows`, parseRowRule),
      allRowsIf: m["all-rows-if"] === undefined ? null : parseList(m["all-rows-if"], `${where}.all-rows-if`, parseCondition),
    });
  }
  if (models.size === 0) throw new RulesError(`${source}: models is empty: name at least one model`);
  return { models };
}

/** Values of a claim as strings: an array claim, a space-separated string (OAuth scope) or a scalar. */
function claimValues(claims: Claims, name: string, splitSpaces: boolean): string[] {
  const value = claims[name];
  if (Array.isArray(value)) return value.filter(isScalar).map(String);
  if (typeof value === "string" && splitSpaces) return value.split(" ").filter((s) => s !== "");
  if (isScalar(value)) return [String(value)];
  return [];
}

function conditionHolds(claims: Claims, condition: ClaimCondition): boolean {
  if ("equals" in condition) return isScalar(claims[condition.claim]) && String(claims[condition.claim]) === String(condition.equals);
  return claimValues(claims, condition.claim, true).includes(String(condition.includes));
}

/** Whether a token may subscribe to the model at all. */
export function canSeeModel(rules: AccessRules, claims: Claims, model: string): boolean {
  const m = rules.models.get(model);
  return m !== undefined && m.require.every((c) => conditionHolds(claims, c));
}

/** Models the token may subscribe to. */
export function visibleModels(rules: AccessRules, claims: Claims): string[] {
  return [...rules.models.keys()].filter((model) => canSeeModel(rules, claims, model));
}

function rowRuleHolds(claims: Claims, rule: RowRule, object: Readonly<Record<string, unknown>>): boolean {
  const value = object[rule.column];
  if (!isScalar(value)) return false;
  const text = String(value);
  if ("inClaim" in rule) return claimValues(claims, rule.inClaim, false).includes(text);
  if ("equalsClaim" in rule) return isScalar(claims[rule.equalsClaim]) && String(claims[rule.equalsClaim]) === text;
  return text === String(rule.equals);
}

/**
 * Whether the token may see this row of the model. Values compare as text, so the claim
 * `sites: [1, 2]` or `sites: ["1"]` matches `id_site: 1`, and `sub: "42"` matches `id_user: 42`.
 */
export function canSeeRow(rules: AccessRules, claims: Claims, model: string, object: Readonly<Record<string, unknown>>): boolean {
  const m = rules.models.get(model);
  if (!m || !m.require.every((c) => conditionHolds(claims, c))) return false;
  if (m.allRowsIf !== null && m.allRowsIf.length > 0 && m.allRowsIf.every((c) => conditionHolds(claims, c))) return true;
  return m.rows.every((rule) => rowRuleHolds(claims, rule, object));
}

/** Whether every column the row rules read is present in the object (a delete's object may lack them). */
export function hasRuleColumns(rules: AccessRules, model: string, object: Readonly<Record<string, unknown>>): boolean {
  const m = rules.models.get(model);
  return m !== undefined && m.rows.every((rule) => isScalar(object[rule.column]));
}

/** The object's identity, from the model's key columns; undefined when a key column is missing. */
export function objectKey(rules: AccessRules, model: string, object: Readonly<Record<string, unknown>>): string | undefined {
  const m = rules.models.get(model);
  if (!m) return undefined;
  const parts: string[] = [];
  for (const column of m.keys) {
    const value = object[column];
    if (!isScalar(value)) return undefined;
    parts.push(String(value));
  }
  return JSON.stringify(parts);
}

/** Every claim name the rules read: tokens that agree on these are treated alike by every rule. */
export function claimsRead(rules: AccessRules): string[] {
  const names = new Set<string>();
  for (const m of rules.models.values()) {
    for (const c of [...m.require, ...(m.allRowsIf ?? [])]) names.add(c.claim);
    for (const r of m.rows) {
      if ("inClaim" in r) names.add(r.inClaim);
      else if ("equalsClaim" in r) names.add(r.equalsClaim);
    }
  }
  return [...names].sort();
}

/**
 * A text equal for two tokens exactly when the rules cannot tell them apart: the values of the
 * claims they read (absent and null alike are read as "no value", and stay distinct here, which
 * only splits an audience, never merges two). Clients of one audience share each event's rule
 * evaluation (issue 18 point 5).
 */
export function audienceOf(names: readonly string[], claims: Claims): string {
  return JSON.stringify(names.map((n) => (Object.hasOwn(claims, n) ? [claims[n]] : [])));
}
