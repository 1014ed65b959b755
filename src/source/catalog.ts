import type pg from "pg";
import { TYPE_CATALOG_SQL, type TypeEntry } from "../decode/types.js";

/** Reads of PostgreSQL's catalog that the stream needs beside the WAL: types and primary keys. */
export class CatalogReader {
  constructor(private readonly query: (sql: string, params?: unknown[]) => Promise<pg.QueryResult>) {}

  async types(oids?: readonly number[]): Promise<TypeEntry[]> {
    const sql = oids ? `${TYPE_CATALOG_SQL} WHERE t.oid = ANY($1::oid[])` : TYPE_CATALOG_SQL;
    const result = await this.query(sql, oids ? [oids] : undefined);
    return result.rows as TypeEntry[];
  }

  /** Primary key columns of a table, in key order; empty when it has none or is gone. */
  async primaryKey(relationOid: number): Promise<string[]> {
    const result = await this.query(
      `SELECT a.attname AS name
         FROM pg_index i
         JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord) ON true
         JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
        WHERE i.indrelid = $1 AND i.indisprimary
        ORDER BY k.ord`,
      [relationOid],
    );
    return result.rows.map((r) => r.name as string);
  }
}
