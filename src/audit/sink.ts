import { brokerProtocol, type Change, subscribeBatches, type Subscription } from "../client/index.js";
import { type Logger, type LogLevel, redactUrl } from "../ops/log.js";
import type { TableRef } from "../source/table-ref.js";
import { type AppendOutcome, AuditTrail, isRowProblem } from "./trail.js";

/** The audit sink's configuration (`tera-cdc audit`'s settings, read in src/cli/audit.ts). */
export interface AuditConfig {
  readonly mqttUrl: string;
  readonly databaseUrl: string;
  readonly models: string[] | undefined;
  readonly table: TableRef;
  readonly clientId: string;
  readonly group: string | undefined;
  readonly sessionExpirySeconds: number;
  readonly batchSize: number;
  readonly deadLetterTopic: string;
  readonly signingKey: Buffer | undefined;
  readonly mqtt: { username?: string; password?: string; ca?: Buffer; cert?: Buffer; key?: Buffer };
  readonly logLevel: LogLevel;
}

/**
 * The audit sink (`tera-cdc audit`): records every change into the audit table until
 * `untilStopped` resolves. A batch is acknowledged to the broker only after its INSERT committed;
 * while the database is unreachable the batch is retried (and nothing more is taken), so a crash
 * or outage anywhere loses nothing and repeats nothing.
 */
export async function runAuditSink(config: AuditConfig, logger: Logger, untilStopped: () => Promise<void>): Promise<void> {
  const tableName = `${config.table.schema}.${config.table.table}`;
  const trail = await AuditTrail.open(config.databaseUrl, config.table);
  let stopping = false;
  let wakeRetry: (() => void) | null = null;
  /** No more appends: a retry waiting for the database ends now. */
  const stop = () => {
    stopping = true;
    wakeRetry?.();
  };
  // conflicts: positions repeated with other content, found in the table (storedConflicts) or by the client's window.
  const totals = { appended: 0, repeats: 0, snapshotRows: 0, conflicts: 0, deadLettered: 0, unsigned: 0, badSignatures: 0, refusedPositions: 0 };
  let storedConflicts = 0;
  let subscribed: Promise<Subscription> | null = null;

  const count = (outcome: AppendOutcome) => {
    totals.appended += outcome.appended;
    totals.repeats += outcome.repeats;
    storedConflicts += outcome.conflicts.length;
    for (const change of outcome.conflicts) {
      logger.error({ table: tableName, model: change.model, lsn: change.lsn, seq: change.seq, topic: change.topic }, "ALERT: this (lsn, seq) is already in the audit table with other content: kept the stored row; a second publisher is writing on the event topics");
    }
  };
  // A change the table cannot store (a value PostgreSQL refuses) would be retried forever and hold
  // up every change after it: it goes to the dead-letter topic instead, and the sink goes on.
  const deadLetter = async (change: Change, error: Error) => {
    const reason = error.message.split("\n")[0]!;
    const record = { reason, topic: change.topic, model: change.model, op: change.op, lsn: change.lsn, seq: change.seq, xid: change.xid, commitTime: change.commitTime, table: change.table, object: change.objectJson, receivedAt: change.receivedAt.toISOString() };
    totals.deadLettered++;
    try {
      await (await subscribed!).publish(config.deadLetterTopic, JSON.stringify(record), { reason });
    } catch (refused) {
      // A broker whose ACL does not let the sink publish there: the log line is then the only record.
      logger.error({ table: tableName, deadLetter: record }, `change cannot be stored and the broker refused it on ${config.deadLetterTopic} (${(refused as Error).message}): this line is its only record`);
      return;
    }
    logger.error({ table: tableName, model: change.model, lsn: change.lsn, seq: change.seq, topic: config.deadLetterTopic }, `change cannot be stored, sent to the dead-letter topic: ${reason}`);
  };
  const appendOneByOne = async (changes: Change[]) => {
    for (const change of changes) {
      try {
        count(await trail.append([change]));
      } catch (error) {
        if (!isRowProblem(error)) throw error;
        await deadLetter(change, error as Error);
      }
    }
  };

  const append = async (received: Change[]): Promise<boolean> => {
    // Snapshot rows restate current rows; they are not changes, so they have no place in the trail.
    const changes = received.filter((change) => change.snapshot === null);
    totals.snapshotRows += received.length - changes.length;
    for (let attempt = 0; ; attempt++) {
      if (stopping) return false;
      try {
        try {
          count(await trail.append(changes));
        } catch (error) {
          if (!isRowProblem(error)) throw error;
          // One change spoils the statement: find it (them) by storing the batch one change at a time.
          await appendOneByOne(changes);
        }
        if (attempt > 0) logger.info({ table: tableName }, "audit table writable again");
        return true;
      } catch (error) {
        const delayMs = Math.min(30_000, 500 * 2 ** Math.min(attempt, 6));
        logger.warn({ table: tableName, changes: changes.length, retryInMs: delayMs }, `appending to the audit table failed: ${(error as Error).message.split("\n")[0]}`);
        await new Promise<void>((resolve) => {
          wakeRetry = resolve;
          setTimeout(resolve, delayMs);
        });
      }
    }
  };

  let subscription: Subscription;
  try {
    // Rows are keyed by (lsn, seq), which travel as MQTT 5 user properties.
    if ((await brokerProtocol({ mqttUrl: config.mqttUrl, mqtt: config.mqtt })) === 4) {
      throw new Error(`the broker at ${redactUrl(config.mqttUrl)} speaks only MQTT 3.1.1: the audit trail needs MQTT 5 (lsn and seq are user properties); use an MQTT 5 broker such as Mosquitto`);
    }
    subscribed = subscribeBatches(
      {
        mqttUrl: config.mqttUrl,
        models: config.models,
        group: config.group,
        clientId: config.clientId,
        session: "persistent",
        sessionExpirySeconds: config.sessionExpirySeconds,
        maxBatch: config.batchSize,
        maxUnacked: Math.max(1000, config.batchSize * 2),
        mqtt: config.mqtt,
        ...(config.signingKey ? { signingKey: config.signingKey } : {}),
        onError: (error, change) => logger.error(change ? { model: change.model, lsn: change.lsn, seq: change.seq } : {}, error.message.split("\n")[0]),
      },
      append,
    );
    subscription = await subscribed;
  } catch (error) {
    await trail.close();
    throw error;
  }
  logger.info({ topics: subscription.topics, table: tableName, clientId: subscription.clientId, mqttUrl: redactUrl(config.mqttUrl) }, "audit sink recording");

  const takeStats = () => {
    const { unsigned, badSignatures, refusedPositions, conflicts } = subscription.stats;
    Object.assign(totals, { unsigned, badSignatures, refusedPositions, conflicts: storedConflicts + conflicts });
  };
  let reported = { ...totals };
  const progress = setInterval(() => {
    takeStats();
    if (Object.entries(totals).every(([k, n]) => reported[k as keyof typeof totals] === n)) return;
    logger.info({ table: tableName, ...totals }, "audit progress");
    reported = { ...totals };
  }, 10_000);

  await untilStopped();
  stop();
  clearInterval(progress);
  takeStats();
  await subscription.close();
  await trail.close();
  logger.info({ table: tableName, ...totals }, "audit sink stopped");
}
