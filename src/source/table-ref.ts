import { quoteIdent } from "./replication.js";

/** A table by schema and name, as settings and the catalog name it. */
export interface TableRef {
  readonly schema: string;
  readonly table: string;
}

export function parseTableRef(text: string): TableRef {
  const parts = text.trim().split(".");
  if (parts.length === 1 && parts[0]) return { schema: "public", table: parts[0] };
  if (parts.length === 2 && parts[0] && parts[1]) return { schema: parts[0], table: parts[1] };
  throw new Error(`"${text}" is not a table name (use table or schema.table)`);
}

export function qualified(ref: TableRef): string {
  return `${quoteIdent(ref.schema)}.${quoteIdent(ref.table)}`;
}
