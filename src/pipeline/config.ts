import type { TableSettings } from "../model/plan.js";
import type { OversizeRule } from "./publisher.js";

/** The pipeline's part of run's configuration: size limit and oversize rule, batching, signing, per-table settings. */
export interface PipelineConfig {
  readonly maxMessageBytes: number;
  readonly onOversize: OversizeRule;
  readonly deadLetterTopic: string;
  /** DatabaseEvents of one model and transaction per TeraEvent (1 = OpenTera's default). */
  readonly batchEvents: number;
  readonly batchBytes: number;
  /** When given, every message gets its `sig` user property (src/messages/signature.ts). */
  readonly signingKey?: Uint8Array;
  /** Per-table settings by schema.table (the preset's, then the user's). */
  readonly tableSettings: Readonly<Record<string, TableSettings>>;
}
