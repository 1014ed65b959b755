import type { OpsConfig } from "../ops/config.js";
import type { PipelineConfig } from "../pipeline/config.js";
import type { SinkConfig } from "../sinks/config.js";
import type { SnapshotConfig } from "../snapshot/config.js";
import type { SourceConfig } from "../source/config.js";

/** `run`'s configuration, one part per stage, each part's type beside the package that consumes it. */
export interface ServiceConfig {
  readonly source: SourceConfig;
  readonly sink: SinkConfig;
  readonly pipeline: PipelineConfig;
  readonly snapshot: SnapshotConfig;
  readonly ops: OpsConfig;
}
