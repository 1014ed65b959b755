import type { Lsn } from "../lsn.js";

/** Counters shared by every pipeline of a run (one pipeline per replication connection). */
export class PipelineStats {
  changes = 0;
  messages = 0;
  bytes = 0;
  transactions = 0;
  oversize = 0;
  rejected = 0;
  skipped = 0;
  confirmedLsn: Lsn = 0n;
  /** Commit time (Unix seconds) of the newest published change. */
  lastCommitTime = 0;
  /** Newest WAL position the server reported (keepalive end, or start of the last message read): lag in bytes. */
  serverWalEnd: Lsn = 0n;
  /** Changes by model and operation; keys from `RelationPlanner.countKey` (built once per relation). */
  readonly byModelOp = new Map<string, number>();
}
