import type { LogLevel } from "./log.js";

/** The operations part of run's configuration: logs, and /healthz and /metrics. */
export interface OpsConfig {
  readonly logLevel: LogLevel;
  /** Also publish tera-cdc's own log lines as OpenTera LogEvents on the broker. */
  readonly logToMqtt: boolean;
  /** Port of /healthz and /metrics; absent: off. */
  readonly healthPort?: number;
  readonly healthHost: string;
}
