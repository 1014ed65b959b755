import { DatabaseEvent_EventType } from "../messages/index.js";
import type { GatewayEvent } from "./events.js";
import { type AccessRules, type Claims, canSeeModel, canSeeRow, hasRuleColumns, objectKey } from "./rules.js";

/**
 * What the rules say of one event for one set of claims, apart from any client's memory. The
 * gateway computes it once per audience (tokens the rules cannot tell apart) and per event.
 */
export interface Verdict {
  /** The object's key (objectKey), undefined when a key column is missing. */
  readonly key: string | undefined;
  readonly model: boolean;
  /** For a create or update: the row passes the row rules. */
  readonly row: boolean;
  /** For a delete: its object itself carries every rule column and passes them. */
  readonly deleteRow: boolean;
}

export function verdictOf(rules: AccessRules, claims: Claims, event: GatewayEvent, key: string | undefined): Verdict {
  if (!canSeeModel(rules, claims, event.model)) return { key, model: false, row: false, deleteRow: false };
  if (event.op === "truncate") return { key, model: true, row: false, deleteRow: false };
  if (event.type === DatabaseEvent_EventType.DB_DELETE) {
    return { key, model: true, row: false, deleteRow: hasRuleColumns(rules, event.model, event.object) && canSeeRow(rules, claims, event.model, event.object) };
  }
  return { key, model: true, row: canSeeRow(rules, claims, event.model, event.object), deleteRow: false };
}

/** What one client gets for one event. */
export interface Decision {
  /** The event to send (the original, or a keys-only delete when the row left the client's view); null: nothing. */
  readonly send: GatewayEvent | null;
  /** The row was visible to this client and no longer is: `send` is a keys-only DB_DELETE. */
  readonly leftView: boolean;
  /** The client's key memory overflowed: it must drop what it shows before this event (a "resync" frame). */
  readonly resyncFirst: boolean;
}

const SKIP: Decision = { send: null, leftView: false, resyncFirst: false };

/**
 * What one client is allowed to see and which objects it has been shown (pure).
 *
 * The delete rule: a DB_DELETE's object holds only key columns, so row rules usually cannot be
 * checked on it. A delete goes to a client when (a) the client has been shown that object (its key
 * is remembered here), or (b) the delete's object itself carries every rule column and passes the
 * rules. An update that moves a row out of the client's rights (id_site changed to a site it may
 * not see) becomes a keys-only delete for a client that was shown the row, so it never keeps a row
 * it may no longer see and never sees the new values.
 *
 * The memory is bounded (`maxKeys` over all models). Forgetting a key would silently lose that
 * object's delete, so on overflow the memory is cleared and the client is told to resync (drop
 * what it shows); it then rebuilds its view from the live stream.
 */
export class ClientView {
  readonly models = new Set<string>();
  private seen = new Map<string, Set<string>>();
  private seenCount = 0;

  constructor(
    private readonly rules: AccessRules,
    readonly claims: Claims,
    private readonly maxKeys: number,
  ) {}

  get rememberedKeys(): number {
    return this.seenCount;
  }

  /** Takes over the memory of an earlier connection of the same client (resume). */
  adoptMemory(earlier: ClientView): void {
    this.seen = earlier.seen;
    this.seenCount = earlier.seenCount;
    earlier.seen = new Map();
    earlier.seenCount = 0;
  }

  /**
   * Records that the client holds this object (a resume on another gateway instance rebuilds the
   * memory from the rows the client was shown); false when the memory is full.
   */
  markShown(model: string, key: string): boolean {
    return this.remember(model, key);
  }

  /** Forgets everything shown (after a resync the client starts from an empty view). */
  reset(): void {
    this.seen.clear();
    this.seenCount = 0;
  }

  /**
   * `verdict` must be verdictOf(rules, claims, event, objectKey(...)) for this view's claims (the
   * gateway passes the one of the client's audience); by default it is computed here.
   */
  decide(event: GatewayEvent, verdict?: Verdict): Decision {
    if (!this.models.has(event.model)) return SKIP;
    verdict ??= verdictOf(this.rules, this.claims, event, objectKey(this.rules, event.model, event.object));
    if (!verdict.model) return SKIP;
    if (event.op === "truncate") {
      this.forgetModel(event.model);
      return { send: event, leftView: false, resyncFirst: false };
    }
    const key = verdict.key;
    if (event.type === DatabaseEvent_EventType.DB_DELETE) {
      if (key !== undefined && this.forget(event.model, key)) return { send: event, leftView: false, resyncFirst: false };
      if (verdict.deleteRow) return { send: event, leftView: false, resyncFirst: false };
      return SKIP;
    }
    if (verdict.row) {
      let resyncFirst = false;
      if (key !== undefined) {
        if (!this.remember(event.model, key)) {
          this.reset();
          this.remember(event.model, key);
          resyncFirst = true;
        }
      }
      return { send: event, leftView: false, resyncFirst };
    }
    if (key !== undefined && this.forget(event.model, key)) {
      return { send: keysOnlyDelete(this.rules, event), leftView: true, resyncFirst: false };
    }
    return SKIP;
  }

  private remember(model: string, key: string): boolean {
    let keys = this.seen.get(model);
    if (!keys) {
      keys = new Set();
      this.seen.set(model, keys);
    }
    if (keys.has(key)) return true;
    if (this.seenCount >= this.maxKeys) return false;
    keys.add(key);
    this.seenCount++;
    return true;
  }

  private forget(model: string, key: string): boolean {
    const keys = this.seen.get(model);
    if (!keys?.delete(key)) return false;
    this.seenCount--;
    return true;
  }

  forgetModel(model: string): void {
    const keys = this.seen.get(model);
    if (!keys) return;
    this.seenCount -= keys.size;
    this.seen.delete(model);
  }
}

const keysOnlyDeletes = new WeakMap<GatewayEvent, GatewayEvent>();

/**
 * A DB_DELETE of the same object holding only its key columns; one per event, whatever the number
 * of clients that see the row leave, so its frames are encoded once too.
 */
function keysOnlyDelete(rules: AccessRules, event: GatewayEvent): GatewayEvent {
  let made = keysOnlyDeletes.get(event);
  if (!made) {
    made = makeKeysOnlyDelete(rules, event);
    keysOnlyDeletes.set(event, made);
  }
  return made;
}

function makeKeysOnlyDelete(rules: AccessRules, event: GatewayEvent): GatewayEvent {
  const keys: Record<string, unknown> = {};
  for (const column of rules.models.get(event.model)?.keys ?? []) keys[column] = event.object[column];
  const objectValue = JSON.stringify(keys);
  return { ...event, type: DatabaseEvent_EventType.DB_DELETE, op: "delete", object: keys, objectValue, bytes: objectValue.length + event.model.length + 64 };
}
