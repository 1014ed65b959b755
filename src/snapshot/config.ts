import type { RpcPolicy } from "../rpc/dispatch.js";

/** The snapshots' and RPC's part of run's configuration (docs/snapshots.md, docs/security.md). */
export interface SnapshotConfig {
  /** Snapshot every published model once when the slot is created (--snapshot initial). */
  readonly initial: boolean;
  /** Rows a snapshot reads per chunk. */
  readonly chunkSize: number;
  /** Models an RPC caller may snapshot; empty: every published model. */
  readonly models: readonly string[];
  readonly maxRunning: number;
  readonly statementTimeoutMs: number;
  /** OpenTera module name: RPC requests arrive on module/<name>/rpc. */
  readonly moduleName: string;
  /** Listen for RPC requests; absent: off (run turns it on with the embedded broker). */
  readonly rpc?: boolean;
  readonly rpcPolicy: RpcPolicy;
}
