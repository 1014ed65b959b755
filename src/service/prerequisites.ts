import type { TypeCatalog } from "../decode/types.js";
import type { Logger } from "../ops/log.js";
import { parseLsn } from "../lsn.js";
import { planRelation, type TableSettings } from "../model/plan.js";
import { CatalogReader } from "../source/catalog.js";
import type { SourceConfig } from "../source/config.js";
import type { Query } from "../source/database.js";
import type { OriginGuard } from "../source/origin.js";
import { checkDecodingHost } from "../source/prerequisites.js";
import { prepareDatabase } from "../source/setup.js";

export interface PreparedSource {
  /** Connected to a hot standby (PostgreSQL 16+): live changes only, no snapshots or RPC. */
  readonly onStandby: boolean;
  /** Whether this run created the slot (then `--snapshot initial` snapshots every model). */
  readonly slotCreated: boolean;
}

/**
 * Before streaming: checks the server (version, wal_level, role, standby), creates what is
 * missing (publication, slot: the stream record is asked first), records the slot's confirmed
 * position, loads the type catalog, and logs what each table will publish and what it cannot.
 */
export async function prepareSource(
  query: Query,
  options: {
    readonly source: SourceConfig;
    readonly snapshotInitial: boolean;
    readonly databaseUrl: string;
    readonly origin: OriginGuard;
    readonly types: TypeCatalog;
    readonly settingsOf: (schema: string, table: string) => TableSettings;
    readonly logger: Logger;
  },
): Promise<PreparedSource> {
  const { source, origin, logger } = options;
  const onStandby = (await checkDecodingHost(query, { snapshotInitial: options.snapshotInitial })).standby;
  const prepared = await prepareDatabase(query, {
    slot: source.slot,
    publication: source.publication,
    tables: source.tables,
    beforeSlot: (slotNow) => origin.check(options.databaseUrl, slotNow),
  });
  const confirmed = (await query("SELECT confirmed_flush_lsn::text AS lsn FROM pg_replication_slots WHERE slot_name = $1", [source.slot])).rows[0]?.lsn;
  if (confirmed) origin.save(parseLsn(confirmed));
  options.types.add(await new CatalogReader(query).types());
  if (onStandby) {
    logger.warn("decoding on a standby (PostgreSQL 16+): live changes only; snapshots and RPC are off (their watermarks need a write on the primary)");
  }
  for (const sql of prepared.applied) logger.info({ sql }, "applied");
  reportTables(prepared.tables, options.types, options.settingsOf, logger);
  return { onStandby, slotCreated: prepared.slotCreated };
}

/** Logs each table's model, topic and columns, and what it will not publish (withheld secrets, keys and large values a replica identity lacks). */
function reportTables(
  tables: Awaited<ReturnType<typeof prepareDatabase>>["tables"],
  types: TypeCatalog,
  settingsOf: (schema: string, table: string) => TableSettings,
  logger: Logger,
): void {
  for (const table of tables) {
    const settings = settingsOf(table.relation.schema, table.relation.table);
    const plan = planRelation(table.relation, table.primaryKey, settings, types);
    logger.info({ table: plan.qualifiedName, model: plan.model, topic: plan.mqttTopic, columns: plan.columns.map((x) => x.name) }, "publishing table");
    if (plan.withheld.length > 0) {
      logger.info({ table: plan.qualifiedName, withheld: plan.withheld }, "secret-looking columns withheld (name them in the table's columns setting to publish them)");
    }
    if (plan.deleteKeysUnavailable.length > 0) {
      logger.warn(
        { table: plan.qualifiedName, missing: plan.deleteKeysUnavailable },
        `deletes will not carry ${plan.deleteKeysUnavailable.join(", ")}: the replica identity holds only the key; run ALTER TABLE ${plan.qualifiedName} REPLICA IDENTITY FULL to include them`,
      );
    }
    const toastable = table.toastable.filter((name) => plan.columns.some((x) => x.name === name));
    if (table.relation.replicaIdentity !== "f" && toastable.length > 0) {
      logger.warn(
        { table: plan.qualifiedName, columns: toastable },
        `an UPDATE that leaves a large value of ${toastable.join(", ")} unchanged omits it (listed in the unchanged property); run ALTER TABLE ${plan.qualifiedName} REPLICA IDENTITY FULL to always publish it`,
      );
    }
  }
}
