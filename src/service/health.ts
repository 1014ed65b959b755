import type { Server } from "node:http";
import type { OpsConfig } from "../ops/config.js";
import { startHealthServer } from "../ops/health.js";
import { createMetrics } from "../ops/metrics.js";
import type { PipelineStats } from "../pipeline/stats.js";

/** What /healthz and /metrics read from the running service. */
export interface ServiceProbe {
  readonly state: string;
  /** The sink is connected (a stream without its broker is not healthy). */
  readonly sinkConnected: boolean;
  readonly messagesInFlight: number;
  readonly reconnects: number;
  readonly startedAt: number;
  readonly stats: PipelineStats;
  figures(): Record<string, number | string>;
}

/** GET /healthz and /metrics when --health-port is given (null otherwise). */
export async function startServiceHealth(ops: OpsConfig, probe: ServiceProbe): Promise<Server | null> {
  if (!ops.healthPort) return null;
  const streaming = () => probe.state === "streaming" && probe.sinkConnected;
  return startHealthServer(
    ops.healthHost,
    ops.healthPort,
    () => ({
      healthy: streaming(),
      state: probe.state === "streaming" && !probe.sinkConnected ? "reconnecting" : probe.state,
      figures: () => probe.figures(),
    }),
    createMetrics({
      stats: probe.stats,
      inFlight: () => probe.messagesInFlight,
      reconnects: () => probe.reconnects,
      streaming,
      startedAt: probe.startedAt,
    }).text,
  );
}
