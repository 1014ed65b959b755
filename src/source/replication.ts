import pg from "pg";
import { nowAsPostgresMicros } from "../decode/time.js";
import { type Lsn, formatLsn } from "../lsn.js";
import type { WalReceiver } from "../pipeline/ports.js";
import { checkPgInternals, endCopy, onceReplicationStart, onCopyData, sendCopyData, socketOf } from "./pg-internals.js";

/** What the replication stream delivers, in order: WAL to the core, and the connection's end. */
export interface WalHandler extends WalReceiver {
  /** The connection ended (error, server shutdown, terminated walsender). Not called after `stop()`. */
  closed(error: Error): void;
}

/**
 * Session settings the value rules rely on: ISO dates in UTC, shortest exact floats, hex bytea.
 * pgoutput runs the types' output functions in the walsender, under these settings.
 */
export const REPLICATION_SESSION_OPTIONS =
  "-c DateStyle=ISO,YMD -c TimeZone=UTC -c IntervalStyle=postgres -c extra_float_digits=1 -c bytea_output=hex";

export interface ReplicationStreamOptions {
  readonly databaseUrl: string;
  readonly slot: string;
  readonly publication: string;
  readonly applicationName?: string;
}

/**
 * One logical replication connection streaming pgoutput from a slot. Confirms only what it is
 * told to (`confirm`), answers keepalives with that position, and never acknowledges by itself:
 * the confirmed position is what PostgreSQL may discard.
 */
export class ReplicationStream {
  private client: pg.Client | null = null;
  private confirmed: Lsn = 0n;
  private stopped = false;
  private statusTimer: NodeJS.Timeout | null = null;
  private lastStatusAt = 0;
  /** A status update held back by `confirm`'s minimum interval, due when the interval has passed. */
  private deferredStatus: NodeJS.Timeout | null = null;
  private paused = false;

  constructor(private readonly options: ReplicationStreamOptions) {}

  /** Starts streaming from `startLsn` (the server starts at its confirmed position when later). */
  async start(startLsn: Lsn, handler: WalHandler, statusIntervalMs = 10_000): Promise<void> {
    this.confirmed = startLsn;
    const client = new pg.Client({
      connectionString: this.options.databaseUrl,
      replication: "database",
      options: REPLICATION_SESSION_OPTIONS,
      application_name: this.options.applicationName ?? "tera-cdc",
    } as pg.ClientConfig);
    this.client = client;
    let streaming = false;
    const closeOnce = (error: Error) => {
      if (this.stopped || this.client !== client) return;
      this.client = null;
      this.clearTimer();
      client.end().catch(() => {});
      handler.closed(error);
    };
    client.on("error", (error) => closeOnce(error));
    client.on("end", () => closeOnce(new Error("replication connection closed")));
    await client.connect();
    // pg has no public API for CopyBoth: its connection is reached in src/source/pg-internals.ts only.
    checkPgInternals(client);
    onCopyData(client, (chunk) => {
      const kind = chunk[0];
      if (kind === 0x77 /* w: XLogData */) {
        handler.data(chunk.readBigUInt64BE(1), chunk.subarray(25));
      } else if (kind === 0x6b /* k: keepalive */) {
        const walEnd = chunk.readBigUInt64BE(1);
        const replyRequested = chunk[17] === 1;
        handler.keepalive(walEnd, replyRequested);
        if (replyRequested) this.sendStatus();
      }
    });
    const started = new Promise<void>((resolve, reject) => {
      onceReplicationStart(client, () => {
        streaming = true;
        resolve();
      });
      // messages 'true': logical decoding messages (pg_logical_emit_message) arrive too; snapshots
      // use them as watermarks (src/snapshot/).
      const sql =
        `START_REPLICATION SLOT ${quoteIdent(this.options.slot)} LOGICAL ${formatLsn(startLsn)} ` +
        `(proto_version '1', publication_names ${quoteLiteral(this.options.publication)}, messages 'true')`;
      client.query(sql).then(
        () => closeOnce(new Error("replication stream ended by the server")),
        (error: Error) => {
          if (!streaming) reject(error);
          else closeOnce(error);
        },
      );
    });
    await started;
    this.statusTimer = setInterval(() => {
      // Status updates keep wal_sender_timeout from firing while reading is paused.
      if (Date.now() - this.lastStatusAt >= statusIntervalMs / 2) this.sendStatus();
    }, statusIntervalMs / 2);
    this.statusTimer.unref();
  }

  /** Stops reading the socket: PostgreSQL holds the WAL, nothing piles up here. */
  pause(): void {
    if (this.paused) return;
    this.paused = true;
    this.socket()?.pause();
  }

  resume(): void {
    if (!this.paused) return;
    this.paused = false;
    this.socket()?.resume();
  }

  /** Everything before `lsn` is delivered: PostgreSQL may let go of it. Sent at most every `minIntervalMs`. */
  confirm(lsn: Lsn, minIntervalMs = 0): void {
    if (lsn <= this.confirmed) return;
    this.confirmed = lsn;
    const wait = minIntervalMs - (Date.now() - this.lastStatusAt);
    if (wait <= 0) {
      this.sendStatus();
    } else if (!this.deferredStatus) {
      // Sent a little later rather than at the next periodic status: otherwise the end of a burst
      // stays unconfirmed (WAL retained, replayed after a crash) for up to the status interval.
      this.deferredStatus = setTimeout(() => {
        this.deferredStatus = null;
        this.sendStatus();
      }, wait);
      this.deferredStatus.unref();
    }
  }

  get confirmedLsn(): Lsn {
    return this.confirmed;
  }

  /** Sends a standby status update with the confirmed position as written, flushed and applied. */
  sendStatus(): void {
    const client = this.client;
    if (!client) return;
    const message = Buffer.alloc(34);
    message[0] = 0x72; // r
    message.writeBigUInt64BE(this.confirmed, 1);
    message.writeBigUInt64BE(this.confirmed, 9);
    message.writeBigUInt64BE(this.confirmed, 17);
    message.writeBigInt64BE(nowAsPostgresMicros(), 25);
    message[33] = 0;
    this.lastStatusAt = Date.now();
    sendCopyData(client, message);
  }

  /** Confirms the final position and closes the connection. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.sendStatus();
    this.stopped = true;
    this.clearTimer();
    const client = this.client;
    this.client = null;
    if (client) {
      // CopyDone ends the stream cleanly; end() then closes the socket.
      try {
        endCopy(client);
      } catch {
        /* socket already gone */
      }
      await Promise.race([client.end().catch(() => {}), new Promise((r) => setTimeout(r, 2000))]);
    }
  }

  private socket(): { pause(): void; resume(): void } | undefined {
    return this.client ? socketOf(this.client) : undefined;
  }

  private clearTimer(): void {
    if (this.statusTimer) clearInterval(this.statusTimer);
    this.statusTimer = null;
    if (this.deferredStatus) clearTimeout(this.deferredStatus);
    this.deferredStatus = null;
  }
}


export function quoteIdent(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

export function quoteLiteral(value: string): string {
  return `'${value.replaceAll("'", "''")}'`;
}
