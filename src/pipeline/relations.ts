import type { RelationMessage } from "../decode/pgoutput.js";
import type { TypeCatalog } from "../decode/types.js";
import type { ChangeOp } from "../model/events.js";
import { planRelation, type RelationPlan, type TableSettings } from "../model/plan.js";
import type { CoreLog, RelationCatalog } from "./ports.js";

/**
 * Plans how each relation of the stream is published (model, columns, keys, topic), from the
 * WAL's Relation messages. Under replica identity DEFAULT the key columns are the primary key
 * and nothing needs looking up; otherwise (and for types not seen yet) the catalog is read, and
 * the caller holds the stream meanwhile.
 */
export class RelationPlanner {
  private readonly plans = new Map<number, RelationPlan>();
  /** The counters' keys (model and op), built once per relation rather than per change. */
  private readonly countKeys = new Map<RelationPlan, Readonly<Record<ChangeOp, string>>>();

  constructor(
    private readonly catalog: RelationCatalog,
    private readonly types: TypeCatalog,
    private readonly tableSettings: (schema: string, table: string) => TableSettings,
    private readonly log: CoreLog,
  ) {}

  /** The plan of a relation the stream described; undefined before its Relation message. */
  planOf(relationOid: number): RelationPlan | undefined {
    return this.plans.get(relationOid);
  }

  /** The stats key of a plan's operation. */
  countKey(plan: RelationPlan, op: ChangeOp): string {
    return this.countKeys.get(plan)![op];
  }

  /** Adopts the relation's plan now (null), or after a catalog look-up (the promise; it rejects with the look-up's error). */
  adopt(relation: RelationMessage): Promise<void> | null {
    const unknownTypes = [...new Set(relation.columns.map((c) => c.typeOid).filter((oid) => !this.types.has(oid)))];
    const identityKey = relation.replicaIdentity === "d" ? relation.columns.filter((c) => (c.flags & 1) !== 0).map((c) => c.name) : null;
    if (identityKey && unknownTypes.length === 0) {
      this.adoptPlan(relation, identityKey);
      return null;
    }
    return (async () => {
      if (unknownTypes.length > 0) this.types.add(await this.catalog.types(unknownTypes));
      this.adoptPlan(relation, identityKey ?? (await this.catalog.primaryKey(relation.relationOid)));
    })();
  }

  private adoptPlan(relation: RelationMessage, primaryKey: string[]): void {
    const previous = this.plans.get(relation.relationOid);
    const plan = planRelation(relation, primaryKey, this.tableSettings(relation.schema, relation.table), this.types);
    this.plans.set(relation.relationOid, plan);
    const key = (op: ChangeOp) => `${plan.model}\u0000${op}`;
    this.countKeys.set(plan, { create: key("create"), update: key("update"), delete: key("delete"), truncate: key("truncate") });
    if (!previous) return;
    this.countKeys.delete(previous);
    const before = previous.relation.columns.map((c) => c.name).join(",");
    const after = relation.columns.map((c) => c.name).join(",");
    if (before !== after) this.log.info({ table: plan.qualifiedName, columns: after }, "table columns changed");
  }
}
