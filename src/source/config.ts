import type { TableRef } from "./table-ref.js";

/** The source's part of run's configuration: which database, slot, publication and tables, and how the connection is paced. */
export interface SourceConfig {
  /** PostgreSQL URL; a libpq host list follows the read-write host (src/source/hosts.ts). */
  readonly databaseUrl: string;
  /** Tables to publish; absent: the publication's. */
  readonly tables?: readonly TableRef[];
  readonly publication: string;
  readonly slot: string;
  /** Most time between two status updates to PostgreSQL. */
  readonly statusIntervalMs: number;
  /** How often a standby checks whether the slot is free. */
  readonly standbyPollMs: number;
  /** Folder of the stream record (src/source/origin.ts). */
  readonly dataDir: string;
  /** Create a new slot even though the recorded one is gone or belongs to another server (logged). */
  readonly startAfresh: boolean;
}
