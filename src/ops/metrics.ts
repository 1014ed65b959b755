import { collectDefaultMetrics, Counter, Gauge, Registry } from "prom-client";

/**
 * The counters of a run as the pipeline keeps them (PipelineStats has this shape). Declared here
 * so that ops does not import the pipeline: the arrow points from the service down to ops.
 */
export interface StreamCounters {
  readonly changes: number;
  readonly messages: number;
  readonly bytes: number;
  readonly transactions: number;
  readonly oversize: number;
  readonly rejected: number;
  readonly skipped: number;
  readonly confirmedLsn: bigint;
  /** Commit time (Unix seconds) of the newest published change; 0 before the first. */
  readonly lastCommitTime: number;
  /** The newest WAL position the server has told us about; 0 when unknown. */
  readonly serverWalEnd?: bigint;
  /** Changes by `${model}\u0000${op}`. */
  readonly byModelOp: ReadonlyMap<string, number>;
}

export interface MetricsSource {
  readonly stats: StreamCounters;
  inFlight(): number;
  /** Replication connections re-established after a loss. */
  reconnects(): number;
  /** Streaming with the broker connected (what /healthz answers 200 for). */
  streaming(): boolean;
  /** Process start, milliseconds since the epoch. */
  readonly startedAt: number;
}

export interface Metrics {
  readonly registry: Registry;
  /** The Prometheus text exposition of every series. */
  text(): Promise<string>;
  readonly contentType: string;
}

/**
 * Prometheus metrics of `tera-cdc run`. Nothing here runs per change: the pipeline keeps plain
 * counters and every series reads them in its collect() callback, at scrape time only.
 */
export function createMetrics(source: MetricsSource, options: { defaultMetrics?: boolean } = {}): Metrics {
  const registry = new Registry();
  const s = source.stats;
  const counter = (name: string, help: string, read: () => number) =>
    new Counter({
      name,
      help,
      registers: [registry],
      collect() {
        this.reset();
        this.inc(read());
      },
    });
  const gauge = (name: string, help: string, read: () => number) =>
    new Gauge({
      name,
      help,
      registers: [registry],
      collect() {
        this.set(read());
      },
    });

  new Counter({
    name: "tera_cdc_changes_published_total",
    help: "Row changes published, by model and operation (create, update, delete, truncate)",
    labelNames: ["model", "op"] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (const [key, count] of s.byModelOp) {
        const split = key.indexOf("\u0000");
        this.inc({ model: key.slice(0, split), op: key.slice(split + 1) }, count);
      }
    },
  });
  counter("tera_cdc_messages_published_total", "MQTT messages published (a batched TeraEvent is one message)", () => s.messages);
  counter("tera_cdc_bytes_published_total", "Payload bytes of the MQTT messages published", () => s.bytes);
  counter("tera_cdc_transactions_total", "Committed transactions read from the slot and published", () => s.transactions);
  counter("tera_cdc_oversize_messages_total", "Events larger than the broker's or --max-message-bytes limit (handled by --on-oversize)", () => s.oversize);
  counter("tera_cdc_rejected_messages_total", "Events the broker refused (handled by --on-oversize)", () => s.rejected);
  counter("tera_cdc_skipped_messages_total", "Events not published at all (--on-oversize skip, or refused twice)", () => s.skipped);
  counter("tera_cdc_reconnects_total", "Replication connections re-established after a loss", () => source.reconnects());
  gauge("tera_cdc_messages_in_flight", "QoS 1/2 messages sent and not yet acknowledged by the broker", () => source.inFlight());
  gauge("tera_cdc_confirmed_lsn", "Last LSN confirmed to PostgreSQL (everything before it is acknowledged by the broker), as a number", () => Number(s.confirmedLsn));
  gauge("tera_cdc_replication_lag_bytes", "WAL bytes between the server's newest known position and the confirmed LSN", () => {
    const end = s.serverWalEnd ?? 0n;
    return end > s.confirmedLsn && s.confirmedLsn > 0n ? Number(end - s.confirmedLsn) : 0;
  });
  gauge("tera_cdc_replication_lag_seconds", "Now minus the commit time of the last published change (grows while the database is idle)", () =>
    s.lastCommitTime > 0 ? Math.max(0, Date.now() / 1000 - s.lastCommitTime) : 0,
  );
  gauge("tera_cdc_last_commit_timestamp_seconds", "Commit time of the last published change, Unix seconds", () => s.lastCommitTime);
  gauge("tera_cdc_streaming", "1 while streaming with the broker connected, 0 otherwise", () => (source.streaming() ? 1 : 0));
  gauge("tera_cdc_start_time_seconds", "Start time of this tera-cdc process, Unix seconds", () => source.startedAt / 1000);
  if (options.defaultMetrics !== false) collectDefaultMetrics({ register: registry });
  return { registry, text: () => registry.metrics(), contentType: registry.contentType };
}
