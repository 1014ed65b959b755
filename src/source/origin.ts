import { mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import pg from "pg";
import { formatLsn, type Lsn, parseLsn } from "../lsn.js";
import { REPLICATION_SESSION_OPTIONS } from "./replication.js";
import { PrerequisiteError } from "./prerequisites.js";

/**
 * Where tera-cdc streamed from, kept in `<data-dir>/slot-<slot>.json` so that a restart can tell
 * "the slot I streamed from is gone" (a failover before PostgreSQL 17, a dropped slot) from "first
 * start" and refuse to create a new slot silently: a new slot starts at the current WAL position and
 * everything committed since the last confirmed position would never be published.
 *
 * A file rather than a table: the least-privilege role writes nothing in the database, the same
 * SQL that can drop the slot cannot erase the record, and bookkeeping writes no WAL of its own.
 */
export interface StreamOrigin {
  readonly slot: string;
  /** IDENTIFY_SYSTEM's systemid: the same on a primary and its physical standbys, new for a new cluster. */
  readonly systemIdentifier: string;
  readonly timeline: number;
  readonly database: string;
  /** The last position PostgreSQL was told is delivered, PostgreSQL's spelling. */
  readonly confirmedLsn: string;
  readonly recordedAt: string;
}

/** What the server says about itself over a replication connection (IDENTIFY_SYSTEM). */
export interface ServerIdentity {
  readonly systemIdentifier: string;
  readonly timeline: number;
  readonly database: string;
  readonly walPosition: Lsn;
}

/** The slot as pg_replication_slots shows it now; null when there is none of that name. */
export interface SlotNow {
  readonly database: string | null;
  readonly confirmedLsn: Lsn | null;
}

export type OriginVerdict =
  | { readonly action: "continue"; readonly note?: string }
  | { readonly action: "create"; readonly note?: string }
  | { readonly action: "refuse"; readonly message: string };

const AFRESH_HINT = "start once with --start-afresh to create a new slot (add --snapshot initial to publish every row again)";

/**
 * Decides whether streaming may go on from what is recorded, what the server is and whether the
 * slot exists. Pure: the caller does the I/O, logs the note, throws the message.
 */
export function judgeOrigin(input: {
  readonly slot: string;
  readonly record: StreamOrigin | null;
  readonly server: ServerIdentity;
  readonly slotNow: SlotNow | null;
  readonly startAfresh: boolean;
  readonly recordPath: string;
}): OriginVerdict {
  const { slot, record, server, slotNow, startAfresh } = input;
  if (slotNow && slotNow.database !== server.database) {
    // A physical slot has no database; a logical one of another database cannot be streamed here.
    return {
      action: "refuse",
      message: `replication slot "${slot}" belongs to ${slotNow.database === null ? "no database (a physical slot)" : `database "${slotNow.database}"`}, not "${server.database}": choose another --slot`,
    };
  }
  if (!record) {
    return slotNow
      ? { action: "continue", note: `no record of an earlier stream in ${input.recordPath}: continuing from slot ${slot} at ${formatLsn(slotNow.confirmedLsn ?? 0n)}` }
      : { action: "create" };
  }
  const where = `system ${record.systemIdentifier}, database "${record.database}", timeline ${record.timeline}`;
  const since = `confirmed up to ${record.confirmedLsn} at ${record.recordedAt}`;
  if (record.systemIdentifier !== server.systemIdentifier || record.database !== server.database) {
    const problem =
      `--database-url reaches PostgreSQL system ${server.systemIdentifier}, database "${server.database}", but tera-cdc streamed slot "${slot}" from ${where} (${since}, ${input.recordPath}): ` +
      `the changes made there after ${record.confirmedLsn} were never published and this server's changes are another stream`;
    if (startAfresh) return { action: slotNow ? "continue" : "create", note: `starting afresh: ${problem}` };
    return { action: "refuse", message: `${problem}; if this server replaces the other, ${AFRESH_HINT}; otherwise correct --database-url` };
  }
  const promoted =
    server.timeline !== record.timeline
      ? ` The server's timeline is now ${server.timeline} (was ${record.timeline}): it was promoted from a standby (a failover), and a slot survives a failover only as a failover slot (PostgreSQL 17+, docs/operations.md).`
      : "";
  if (slotNow) {
    return { action: "continue", note: promoted ? `the slot survived a failover.${promoted}` : undefined };
  }
  const problem =
    `replication slot "${slot}" is gone: tera-cdc streamed from it (${where}) and ${since}; ` +
    `changes committed after ${record.confirmedLsn} may never have been published, and a new slot would skip everything until it is created.${promoted}`;
  if (startAfresh) return { action: "create", note: `starting afresh: ${problem} Creating a new slot now.` };
  return { action: "refuse", message: `${problem} To go on anyway, ${AFRESH_HINT}` };
}

export function originPath(dataDir: string, slot: string): string {
  // Slot names are [a-z0-9_] (PostgreSQL refuses others), so the name is a safe file name.
  return join(resolve(dataDir), `slot-${slot}.json`);
}

/** The record, or null when there is none (first start, or another data folder). A damaged record is an error: it is not "none". */
export function readOrigin(path: string): StreamOrigin | null {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw new PrerequisiteError(`cannot read the stream record ${path} (${(error as Error).message}): make the --data-dir folder readable`);
  }
  try {
    const value = JSON.parse(text) as StreamOrigin;
    parseLsn(value.confirmedLsn);
    if (typeof value.systemIdentifier !== "string" || typeof value.database !== "string" || typeof value.timeline !== "number") throw new Error("fields missing");
    return value;
  } catch (error) {
    throw new PrerequisiteError(`the stream record ${path} is damaged (${(error as Error).message}): restore it, or delete it and start with --start-afresh`);
  }
}

/** Replaces the record atomically (write, then rename), so a crash leaves the old or the new one. */
export function writeOrigin(path: string, origin: StreamOrigin): void {
  try {
    mkdirSync(join(path, ".."), { recursive: true });
    const partial = `${path}.partial`;
    writeFileSync(partial, `${JSON.stringify(origin, null, 2)}\n`);
    renameSync(partial, path);
  } catch (error) {
    throw new PrerequisiteError(
      `cannot write the stream record ${path} (${(error as NodeJS.ErrnoException).code ?? (error as Error).message}): give --data-dir a writable folder that persists across restarts`,
    );
  }
}

/** IDENTIFY_SYSTEM on a short-lived replication connection (needs the REPLICATION attribute, like streaming). */
export async function identifySystem(databaseUrl: string): Promise<ServerIdentity> {
  const client = new pg.Client({ connectionString: databaseUrl, replication: "database", options: REPLICATION_SESSION_OPTIONS, application_name: "tera-cdc identify" } as pg.ClientConfig);
  client.on("error", () => {});
  await client.connect();
  try {
    const row = (await client.query("IDENTIFY_SYSTEM")).rows[0] as { systemid: string; timeline: string | number; xlogpos: string; dbname: string };
    return { systemIdentifier: String(row.systemid), timeline: Number(row.timeline), database: row.dbname, walPosition: parseLsn(row.xlogpos) };
  } finally {
    await client.end().catch(() => {});
  }
}

/**
 * The record of one slot, kept up to date while streaming: checked before the slot is used or
 * created, saved once the slot is ready, then as the confirmed position moves, and at the stop.
 */
export class OriginGuard {
  readonly path: string;
  private record: StreamOrigin | null;
  private server: ServerIdentity | null = null;
  private saved: Lsn | null = null;

  constructor(
    dataDir: string,
    private readonly slot: string,
    private readonly startAfresh: boolean,
    private readonly log: { warn(message: string): void; info(message: string): void },
  ) {
    this.path = originPath(dataDir, slot);
    this.record = readOrigin(this.path);
  }

  /** Throws a PrerequisiteError instead of letting a slot be silently replaced (or another server's stream be taken for ours). */
  async check(databaseUrl: string, slotNow: SlotNow | null): Promise<void> {
    const server = await identifySystem(databaseUrl);
    const verdict = judgeOrigin({ slot: this.slot, record: this.record, server, slotNow, startAfresh: this.startAfresh, recordPath: this.path });
    if (verdict.action === "refuse") throw new PrerequisiteError(verdict.message);
    if (verdict.note) (verdict.note.startsWith("no record") ? this.log.info : this.log.warn).call(this.log, verdict.note);
    this.server = server;
  }

  /**
   * The stream moved to another host of the database URL (a promoted standby): the record names
   * the server streamed from now (its timeline), written at the next save. The same system only:
   * another system's slot is not ours (check() refuses that at the next start).
   */
  async followed(databaseUrl: string): Promise<void> {
    const server = await identifySystem(databaseUrl);
    if (this.server && server.systemIdentifier !== this.server.systemIdentifier) {
      this.log.warn(`the host now streamed from is another system (${server.systemIdentifier}, was ${this.server.systemIdentifier})`);
      return;
    }
    if (this.server && server.timeline !== this.server.timeline) this.log.info(`now on timeline ${server.timeline} (was ${this.server.timeline}): a failover`);
    this.server = server;
    this.saved = null;
  }

  /** Records the confirmed position (only when it moved: the file is written a few times a minute at most by the caller). */
  save(confirmed: Lsn): void {
    const server = this.server;
    // Only forward: 0/0 (nothing streamed yet) or an older position never replaces what is recorded.
    if (!server || confirmed === 0n || (this.saved !== null && confirmed <= this.saved)) return;
    this.record = {
      slot: this.slot,
      systemIdentifier: server.systemIdentifier,
      timeline: server.timeline,
      database: server.database,
      confirmedLsn: formatLsn(confirmed),
      recordedAt: new Date().toISOString(),
    };
    writeOrigin(this.path, this.record);
    this.saved = confirmed;
  }

  /** The refusal for a slot that vanished while streaming (dropped, or the server failed over to one without it). */
  async slotGone(databaseUrl: string, confirmed: Lsn): Promise<PrerequisiteError> {
    this.save(confirmed);
    const server = await identifySystem(databaseUrl).catch(() => this.server);
    const verdict = judgeOrigin({ slot: this.slot, record: this.record, server: server!, slotNow: null, startAfresh: false, recordPath: this.path });
    return new PrerequisiteError(verdict.action === "refuse" ? verdict.message : `replication slot "${this.slot}" is gone`);
  }
}
