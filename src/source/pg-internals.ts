/**
 * The one file that reaches pg's protocol connection (`client.connection`, typed by @types/pg but
 * not documented by pg) for logical replication: pg has no public API for the CopyBoth stream of
 * START_REPLICATION. The source needs four things from it: CopyData messages as they arrive, writing
 * a CopyData (standby status update), ending the copy (CopyDone), and pausing the socket.
 *
 * Why not pg's Submittable (as pg-copy-streams does): measured figures would have to show it as fast
 * and it would still need the same socket to pause; a pause here is real back-pressure already (the
 * kernel buffers fill, PostgreSQL's walsender waits). What a pause cannot stop is the rest of a chunk
 * pg-protocol has already read: those messages arrive after `pause()`, and the pipeline queues them
 * (a few at most: one socket read). pg is pinned to a minor version; `checkPgInternals` fails at
 * start with one line if the connection's shape changed.
 */
import type pg from "pg";

interface PgConnection {
  stream: { pause(): void; resume(): void };
  on(event: string, listener: (...args: any[]) => void): void;
  once(event: string, listener: (...args: any[]) => void): void;
  sendCopyFromChunk(chunk: Buffer): void;
  endCopyFrom(): void;
}

function connectionOf(client: pg.Client): PgConnection {
  return (client as unknown as { connection: PgConnection }).connection;
}

/** Fails with one clear line when pg's connection lacks what replication uses. */
export function checkPgInternals(client: pg.Client): void {
  const connection = connectionOf(client) as Partial<PgConnection> | undefined;
  const missing = (["on", "once", "sendCopyFromChunk", "endCopyFrom"] as const).filter((name) => typeof connection?.[name] !== "function");
  if (!connection?.stream || missing.length > 0) {
    throw new Error(`pg's protocol connection lacks ${missing.length > 0 ? missing.join(", ") : "its socket"}: this pg version differs from the one tera-cdc was built for (see src/source/pg-internals.ts); install the pinned pg version`);
  }
}

/** Every CopyData message of the replication stream, as it arrives. */
export function onCopyData(client: pg.Client, listener: (chunk: Buffer) => void): void {
  connectionOf(client).on("copyData", ({ chunk }: { chunk: Buffer }) => listener(chunk));
}

/** The server switched to CopyBoth (START_REPLICATION accepted). */
export function onceReplicationStart(client: pg.Client, listener: () => void): void {
  connectionOf(client).once("replicationStart", listener);
}

/** Writes one CopyData message to the server (a standby status update). */
export function sendCopyData(client: pg.Client, message: Buffer): void {
  connectionOf(client).sendCopyFromChunk(message);
}

/** CopyDone: ends the replication stream cleanly. */
export function endCopy(client: pg.Client): void {
  connectionOf(client).endCopyFrom();
}

/** The socket under the connection, to pause and resume reading. */
export function socketOf(client: pg.Client): { pause(): void; resume(): void } {
  return connectionOf(client).stream;
}
