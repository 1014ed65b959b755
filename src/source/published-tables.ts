import type { RelationColumn, RelationMessage, ReplicaIdentity } from "../decode/pgoutput.js";
import type { Query } from "./database.js";
import { PrerequisiteError } from "./prerequisites.js";
import { quoteIdent } from "./replication.js";
import { qualified, type TableRef } from "./table-ref.js";

/** A published table as the catalog describes it now, shaped like a Relation message. */
export interface PublishedTable {
  readonly relation: RelationMessage;
  readonly primaryKey: readonly string[];
  /** Columns whose values PostgreSQL may store out of line (TOAST). */
  readonly toastable: readonly string[];
}


/** The tables a publication holds now. */
export async function publicationTables(query: Query, publication: string): Promise<TableRef[] | null> {
  const exists = await query("SELECT 1 FROM pg_publication WHERE pubname = $1", [publication]);
  if (exists.rowCount === 0) return null;
  const rows = await query(
    "SELECT schemaname AS schema, tablename AS table FROM pg_publication_tables WHERE pubname = $1 ORDER BY 1, 2",
    [publication],
  );
  return rows.rows as TableRef[];
}

export async function describeTable(query: Query, ref: TableRef): Promise<PublishedTable> {
  const found = await query(
    `SELECT c.oid::int AS oid, c.relreplident AS identity, c.relkind AS kind
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = $1 AND c.relname = $2`,
    [ref.schema, ref.table],
  );
  const table = found.rows[0];
  if (!table || !["r", "p"].includes(table.kind)) {
    throw new PrerequisiteError(
      `table ${ref.schema}.${ref.table} does not exist: check the --tables setting or create the table`,
    );
  }
  const readable = await query("SELECT has_table_privilege($1::oid, 'SELECT') AS ok, current_user AS me", [table.oid]);
  if (!readable.rows[0]?.ok) {
    throw new PrerequisiteError(
      `the role cannot read ${ref.schema}.${ref.table}: run GRANT SELECT ON ${qualified(ref)} TO ${quoteIdent(readable.rows[0]?.me ?? "current_user")};`,
    );
  }
  const columns = await query(
    `SELECT a.attname AS name, a.atttypid::int AS "typeOid", a.atttypmod AS "typeMod", a.attstorage AS storage,
            coalesce(a.attnum = ANY(i.indkey), false) AS "inKey", coalesce(a.attnum = ANY(p.indkey), false) AS "inPk"
       FROM pg_attribute a
       LEFT JOIN pg_index p ON p.indrelid = a.attrelid AND p.indisprimary
       LEFT JOIN pg_index i ON i.indrelid = a.attrelid AND i.indisreplident
      WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped
      ORDER BY a.attnum`,
    [table.oid],
  );
  const identity = table.identity as ReplicaIdentity;
  const primaryKey = columns.rows.filter((c) => c.inPk).map((c) => c.name as string);
  const relationColumns: RelationColumn[] = columns.rows.map((c) => ({
    name: c.name,
    typeOid: c.typeOid,
    typeMod: c.typeMod,
    flags: identity === "f" || (identity === "d" && c.inPk) || (identity === "i" && c.inKey) ? 1 : 0,
  }));
  if (identity === "n" || (identity === "d" && primaryKey.length === 0)) {
    throw new PrerequisiteError(
      `table ${ref.schema}.${ref.table} has no primary key and no replica identity, so PostgreSQL would reject its UPDATE and DELETE once published: ` +
        `add a primary key or run ALTER TABLE ${qualified(ref)} REPLICA IDENTITY FULL;`,
    );
  }
  return {
    relation: { tag: "relation", relationOid: table.oid, schema: ref.schema, table: ref.table, replicaIdentity: identity, columns: relationColumns },
    primaryKey,
    toastable: columns.rows.filter((c) => c.storage === "x" || c.storage === "e").map((c) => c.name as string),
  };
}
