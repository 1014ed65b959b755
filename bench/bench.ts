/**
 * `npm run bench [-- --quick] [--json FILE] [--svg FILE] [--only a,b] [--profile DIR]`
 *
 * Starts its own PostgreSQL (wal_level=logical) and Mosquitto on free ports and measures, side by
 * side on the same machine and data: the raw limits (pg_recvlogical draining the WAL, a bare
 * mqtt.js client publishing the same payloads), tera-cdc end to end (the real `tera-cdc run`
 * child process), commit-to-subscriber latency at steady rates, tera-cdc's peak RSS, and the
 * trigger + pg_notify approach. Figures are printed, never asserted: the machine is shared.
 *
 * Every section's subscriber is bench/subscriber.ts, a lean MQTT 5 QoS 1 client on a raw socket
 * rather than mqtt.js: on two cores tera-cdc, Mosquitto and the subscriber share the CPU, and
 * mqtt.js's parser, building an object per user property, cost twice as much per tera-cdc message
 * as per bare-client message, so the ratio measured the subscriber too. The bulk section prints
 * the subscriber's own CPU per message for each run.
 */
import { execFile } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { cpus, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import pg from "pg";
import { decodeTeraEvent, unpackAny } from "../src/messages/index.js";
import { sign, signed, verify } from "../src/messages/signature.js";
import { type Broker, startBroker } from "../test/harness/broker.js";
import { type CdcProcess, runCli, startCdc } from "../test/harness/cdc.js";
import { waitFor } from "../test/harness/ports.js";
import { type PostgresServer, startPostgres } from "../test/harness/postgres.js";
import { exited, spawnTracked } from "../test/harness/processes.js";
import { benchRedis } from "./redis.js";
import { Subscriber, TOPIC_PREFIX } from "./subscriber.js";
import { GATEWAY_FIGURES, gatewayBench } from "./gateway.js";
import { type Figure, figure, percentile, type Ratio, ratio, renderSvg, renderTable, type Target, target } from "./report.js";

const PG_BIN = process.env.TERA_CDC_PG_BIN ?? "/usr/lib/postgresql/15/bin";
const BARE_PUBLISHER = join(import.meta.dirname, "bare-publisher.mjs");
/** Rows of the snapshot section's table (issue 18: a snapshot of 200,000 rows, quick run too). */
const SNAPSHOT_ROWS = 200_000;
const SECTIONS = ["bulk", "snapshot", "pgbench", "opentera", "latency", "memory", "peers", "signing", "redis", "gateway"] as const;
type Section = (typeof SECTIONS)[number];

interface Settings {
  readonly quick: boolean;
  /** Changes per throughput run (bulk transaction size, pgbench transactions). */
  readonly rows: number;
  readonly reps: number;
  /** Rows of the big transaction of the memory figure. */
  readonly bigRows: number;
  readonly latencySeconds: number;
  readonly latencyRates: number[];
  readonly batchEvents: number;
  readonly batchBytes: number;
  readonly inFlight: number;
}

interface Options {
  readonly settings: Settings;
  readonly jsonFile?: string;
  readonly svgFile?: string;
  readonly profileDir?: string;
  readonly only: Set<Section>;
}

function parseArgs(argv: string[]): Options {
  let quick = false;
  let jsonFile: string | undefined;
  let svgFile: string | undefined;
  let profileDir: string | undefined;
  let only = new Set<Section>(SECTIONS);
  let rows: number | undefined;
  let reps: number | undefined;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const value = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${arg} needs a value`);
      return v;
    };
    if (arg === "--quick") quick = true;
    else if (arg === "--json") jsonFile = value();
    else if (arg === "--svg") svgFile = value();
    else if (arg === "--profile") profileDir = value();
    else if (arg === "--rows") rows = positive(arg, value());
    else if (arg === "--reps") reps = positive(arg, value());
    else if (arg === "--only") {
      const names = value().split(",");
      for (const n of names) if (!SECTIONS.includes(n as Section)) throw new Error(`--only ${n}: unknown section; use some of ${SECTIONS.join(",")}`);
      only = new Set(names as Section[]);
    } else if (arg === "--help" || arg === "-h") {
      process.stdout.write("usage: npm run bench -- [--quick] [--json FILE] [--svg FILE] [--only bulk,pgbench,opentera,latency,memory,peers,signing,redis,gateway] [--rows N] [--reps N] [--profile DIR]\n");
      process.exit(0);
    } else throw new Error(`unknown argument ${arg}; see --help`);
  }
  const preset: Settings = quick
    ? { quick, rows: 20_000, reps: 1, bigRows: 200_000, latencySeconds: 3, latencyRates: [1000, 5000], batchEvents: 500, batchBytes: 65536, inFlight: 1000 }
    : { quick, rows: 200_000, reps: 3, bigRows: 1_000_000, latencySeconds: 10, latencyRates: [1000, 5000], batchEvents: 500, batchBytes: 65536, inFlight: 1000 };
  const settings: Settings = { ...preset, rows: rows ?? preset.rows, reps: reps ?? preset.reps };
  return { settings, jsonFile, svgFile, profileDir, only };
}

function positive(flag: string, text: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1) throw new Error(`${flag} ${text}: expected a whole number of at least 1`);
  return n;
}

const now = () => performance.timeOrigin + performance.now();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const log = (text: string) => process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${text}\n`);

function run(command: string, args: string[], timeoutMs = 600_000): Promise<{ stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    execFile(command, args, { timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024 }, (error, stdout, stderr) => {
      if (error) reject(new Error(`${command.split("/").pop()} failed: ${error.message}\n${stderr.slice(-2000)}`));
      else resolve({ stdout, stderr });
    });
  });
}

/** Samples of every figure, by id; turned into medians at the end. */
class Results {
  readonly samples = new Map<string, { label: string; unit: string; group: Figure["group"]; values: number[] }>();
  readonly notes: string[] = [];

  add(id: string, label: string, unit: string, group: Figure["group"], value: number): void {
    let entry = this.samples.get(id);
    if (!entry) {
      entry = { label, unit, group, values: [] };
      this.samples.set(id, entry);
    }
    entry.values.push(value);
    log(`${label}: ${Number.isFinite(value) ? value.toFixed(value >= 100 ? 0 : 2) : value} ${unit}`);
  }

  figures(): Figure[] {
    return [...this.samples.entries()].map(([id, s]) => figure(id, s.label, s.unit, s.group, s.values));
  }
}

class Bench {
  private pgServer!: PostgresServer;
  private broker!: Broker;
  private readonly tmp = mkdtempSync(join(tmpdir(), "tera-cdc-bench-"));
  readonly results = new Results();
  private processCount = 0;

  constructor(private readonly options: Options) {}

  private get s(): Settings {
    return this.options.settings;
  }

  async setUp(): Promise<void> {
    this.pgServer = await startPostgres({
      settings: { max_wal_size: "4GB", checkpoint_timeout: "30min", shared_buffers: "256MB", logical_decoding_work_mem: "64MB" },
    });
    this.broker = await startBroker();
    log(`PostgreSQL on ${this.pgServer.port}, Mosquitto on ${this.broker.port}`);
  }

  async tearDown(): Promise<void> {
    await this.broker?.close().catch(() => {});
    await this.pgServer?.close().catch(() => {});
    rmSync(this.tmp, { recursive: true, force: true });
  }

  private sql(text: string, params?: unknown[]): Promise<pg.QueryResult> {
    return this.pgServer.query(text, params);
  }

  private async startTeraCdc(name: string, table: string, extra: string[] = [], sink: { mqttUrl: string } | { redisUrl: string } = { mqttUrl: this.broker.url }): Promise<CdcProcess> {
    const env: Record<string, string> = {};
    if (process.env.BENCH_CDC_NODE_OPTIONS) env.NODE_OPTIONS = process.env.BENCH_CDC_NODE_OPTIONS;
    if (this.options.profileDir) {
      mkdirSync(this.options.profileDir, { recursive: true });
      env.NODE_OPTIONS = `${env.NODE_OPTIONS ?? ""} --import=${join(import.meta.dirname, "cpu-profile.mjs")}`.trim();
      env.TERA_CDC_CPU_PROFILE_DIR = this.options.profileDir;
      env.TERA_CDC_CPU_PROFILE_NAME = `${name}-${++this.processCount}`;
    }
    return startCdc({
      databaseUrl: this.pgServer.url,
      ...sink,
      args: ["--tables", table, "--slot", name, "--publication", name, "--log-level", "warn", "--max-in-flight", String(this.s.inFlight), ...extra],
      env,
    });
  }

  private async stopTeraCdc(cdc: CdcProcess, slot: string): Promise<void> {
    const code = await cdc.stop();
    if (code !== 0) log(`tera-cdc exited with ${code}: ${cdc.logs().slice(-1500)}`);
    await this.dropSlot(slot);
  }

  private async dropSlot(slot: string): Promise<void> {
    await waitFor(`slot ${slot} to be released`, async () => {
      await this.sql("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1", [slot]);
      return true;
    }, 30_000, 200);
  }

  /** Peak (VmHWM) and current (VmRSS) resident set of a process, in MB. */
  private memoryOf(pid: number): { peakMb: number; rssMb: number } {
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    const kb = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, "m").exec(status)?.[1] ?? Number.NaN);
    return { peakMb: kb("VmHWM") / 1024, rssMb: kb("VmRSS") / 1024 };
  }

  // ---- raw limits -------------------------------------------------------------------------

  /** Creates a pgoutput slot before a workload, so pg_recvlogical can drain exactly its WAL. */
  private async recvSlot(slot: string): Promise<void> {
    await this.sql("SELECT pg_create_logical_replication_slot($1, 'pgoutput')", [slot]);
  }

  /** Seconds pg_recvlogical takes to decode the slot's WAL up to now, to /dev/null. */
  private async recvDrain(slot: string, publication: string): Promise<number> {
    const endpos = (await this.sql("SELECT pg_current_wal_lsn()::text AS lsn")).rows[0].lsn as string;
    const started = now();
    await run(join(PG_BIN, "pg_recvlogical"), [
      "-d", this.pgServer.url, "--slot", slot, "--start", "-f", "/dev/null", "--no-loop", "-E", endpos,
      "-o", "proto_version=1", "-o", `publication_names=${publication}`,
    ]);
    const seconds = (now() - started) / 1000;
    await this.dropSlot(slot);
    return seconds;
  }

  /** Changes/s a bare mqtt.js client reaches publishing `count` payloads of `bytes` to one subscriber, and per second of its CPU. */
  private async bareMqtt(count: number, bytes: number, userProperties?: Record<string, string>): Promise<{ rate: number; perCpuSecond: number; subscriberCpuUs: number }> {
    const topic = `bench/bare/${bytes}`;
    const subscriber = await Subscriber.start(this.broker.url, topic);
    try {
      const child = spawnTracked(process.execPath, [BARE_PUBLISHER, JSON.stringify({ url: this.broker.url, topic, count, payloadBytes: bytes, qos: 1, inFlight: this.s.inFlight, userProperties })], {
        stdio: ["ignore", "pipe", "pipe"],
      });
      let stdout = "";
      let stderr = "";
      child.stdout?.on("data", (d: Buffer) => (stdout += d.toString()));
      child.stderr?.on("data", (d: Buffer) => (stderr += d.toString()));
      const benchCpuBefore = process.cpuUsage();
      await subscriber.waitForEvents(count);
      const benchCpu = process.cpuUsage(benchCpuBefore);
      const code = await exited(child, 60_000);
      if (code !== 0) throw new Error(`bare publisher exited with ${code}: ${stderr.slice(-1000)}`);
      const { firstPublishAt, cpuSeconds } = JSON.parse(stdout) as { firstPublishAt: number; cpuSeconds: number };
      return {
        rate: count / ((subscriber.lastAt - firstPublishAt) / 1000),
        perCpuSecond: count / Math.max(cpuSeconds, 0.01),
        subscriberCpuUs: (benchCpu.user + benchCpu.system) / count,
      };
    } finally {
      await subscriber.close();
    }
  }

  // ---- workloads ---------------------------------------------------------------------------

  private bulkInsert(table: string, idColumn: string, from: number, to: number): string {
    return `INSERT INTO ${table} (${idColumn}, v, note) SELECT g, g % 1000, 'bulk row ' || g FROM generate_series(${from}, ${to}) g`;
  }

  private openteraInsert(from: number, to: number): string {
    return `INSERT INTO t_devices (id_device, device_uuid, device_name, id_device_type, device_enabled, device_onlineable, device_config, device_lastonline)
      SELECT g, gen_random_uuid(), 'Device ' || g || ' of site ' || (g % 50), 1 + g % 4, g % 7 <> 0, g % 3 = 0,
             jsonb_build_object('sensors', jsonb_build_array('heart_rate', 'spo2'), 'sample_rate', 50, 'room', 'room ' || (g % 40)),
             now() - (g % 1000) * interval '1 minute'
      FROM generate_series(${from}, ${to}) g`;
  }

  /**
   * A table for the pgbench mix, preloaded so that every transaction changes exactly one row:
   * updates hit ids 1..50,000, deletes take ids from a sequence above that, inserts add new ids.
   */
  private async pgbenchTable(table: string, transactionsPlanned: number): Promise<string> {
    const updateRange = 50_000;
    const preload = updateRange + Math.ceil(transactionsPlanned * 0.4) + 1000;
    await this.sql(`CREATE TABLE ${table} (id_${table.replace(/^bench_/, "")} bigserial PRIMARY KEY, v int NOT NULL, note text NOT NULL)`);
    const id = `id_${table.replace(/^bench_/, "")}`;
    await this.sql(`INSERT INTO ${table} (${id}, v, note) SELECT g, 0, 'preloaded row ' || g FROM generate_series(1, ${preload}) g`);
    await this.sql(`SELECT setval('${table}_${id}_seq', ${preload})`);
    await this.sql(`CREATE SEQUENCE ${table}_deletes START ${updateRange + 1}`);
    await this.sql(`VACUUM ANALYZE ${table}`);
    const script = join(this.tmp, `${table}.sql`);
    writeFileSync(
      script,
      [
        "\\set op random(1, 3)",
        `\\set uid random(1, ${updateRange})`,
        "\\if :op = 1",
        `INSERT INTO ${table} (v, note) VALUES (:uid, 'pgbench row from client ' || :client_id);`,
        "\\elif :op = 2",
        `UPDATE ${table} SET v = v + 1 WHERE ${id} = :uid;`,
        "\\else",
        `DELETE FROM ${table} WHERE ${id} = (SELECT nextval('${table}_deletes'));`,
        "\\endif",
        "",
      ].join("\n"),
    );
    return script;
  }

  /** Runs the pgbench mix: `transactions` single-row transactions from 2 clients; returns its tps. */
  private async pgbench(script: string, transactions: number): Promise<number> {
    const clients = 2;
    const { stdout } = await run(join(PG_BIN, "pgbench"), [
      "-h", "127.0.0.1", "-p", String(this.pgServer.port), "-U", "postgres", "-n", "-c", String(clients), "-j", String(clients),
      "-t", String(Math.ceil(transactions / clients)), "-f", script, "postgres",
    ]);
    const tps = /tps = ([\d.]+) \(without initial connection time\)/.exec(stdout);
    if (!tps) throw new Error(`pgbench printed no tps: ${stdout.slice(-500)}`);
    return Number(tps[1]);
  }

  /** Changes/s of one tera-cdc run: from the first COMMIT to the subscriber holding `count` events. */
  private endToEnd(subscriber: Subscriber, count: number): number {
    return count / ((subscriber.lastAt - subscriber.firstCommitMs) / 1000);
  }

  // ---- sections ----------------------------------------------------------------------------

  /**
   * (a) and (c): one bulk transaction per repetition, tera-cdc one event per message and then
   * batched, pg_recvlogical draining the same WAL, the bare client publishing as many payloads
   * of the same size.
   */
  async bulk(kind: "bulk" | "opentera"): Promise<void> {
    const rows = this.s.rows;
    const name = kind === "bulk" ? "(a) bulk 1 tx" : "(c) OpenTera t_devices 1 tx";
    const table = kind === "bulk" ? "bench_bulk" : "t_devices";
    const model = kind === "bulk" ? "bulk" : "device";
    if (kind === "bulk") await this.sql("CREATE TABLE bench_bulk (id_bulk bigint PRIMARY KEY, v int NOT NULL, note text NOT NULL, at timestamptz NOT NULL DEFAULT now())");
    else {
      await this.sql(`CREATE TABLE t_devices (id_device bigint PRIMARY KEY, device_uuid uuid NOT NULL, device_name text NOT NULL, id_device_type int NOT NULL,
        device_enabled boolean NOT NULL, device_onlineable boolean NOT NULL, device_config jsonb, device_lastonline timestamptz)`);
    }
    const publication = `recv_${kind}`;
    await this.sql(`CREATE PUBLICATION ${publication} FOR TABLE ${table}`);
    let nextId = 1;
    for (const batched of [false, true]) {
      const mode = batched ? `batched ${this.s.batchEvents}` : "1 event/message";
      const slot = `cdc_${kind}_${batched ? "batched" : "single"}`;
      const cdc = await this.startTeraCdc(slot, table, batched ? ["--batch-events", String(this.s.batchEvents), "--batch-bytes", String(this.s.batchBytes)] : []);
      const subscriber = await Subscriber.start(this.broker.url, `${TOPIC_PREFIX}${model}`);
      try {
        for (let rep = 0; rep < this.s.reps; rep++) {
          subscriber.reset();
          await this.recvSlot(`${publication}_slot`);
          const from = nextId;
          nextId += rows;
          // CPU time of tera-cdc and of the slot's walsender (decoding), the capacity model's per-core figures (docs/scaling.md).
          const walsender = Number((await this.sql("SELECT active_pid FROM pg_replication_slots WHERE slot_name = $1", [slot])).rows[0]?.active_pid);
          const cpuBefore = [cpuSecondsOf(cdc.child.pid!), cpuSecondsOf(walsender)];
          // The bench process's own CPU is its subscriber's (the INSERT only waits): it shares the machine with tera-cdc.
          const benchCpuBefore = process.cpuUsage();
          await this.sql(kind === "bulk" ? this.bulkInsert(table, "id_bulk", from, nextId - 1) : this.openteraInsert(from, nextId - 1));
          await subscriber.waitForEvents(rows);
          const benchCpu = process.cpuUsage(benchCpuBefore);
          if (subscriber.events !== rows) throw new Error(`expected ${rows} events, subscriber holds ${subscriber.events}`);
          const [cdcCpu, walsenderCpu] = [cpuSecondsOf(cdc.child.pid!) - cpuBefore[0]!, cpuSecondsOf(walsender) - cpuBefore[1]!];
          this.results.add(`cdc-${kind}-${batched ? "batched" : "single"}`, `tera-cdc ${name}, ${mode}`, "changes/s", "tera-cdc", this.endToEnd(subscriber, rows));
          this.results.add(`core-${kind}-${batched ? "batched" : "single"}`, `tera-cdc ${name}, ${mode}, per second of its CPU`, "changes/core-s", "tera-cdc", rows / Math.max(cdcCpu, 0.01));
          this.results.add(`walsender-${kind}-${batched ? "batched" : "single"}`, `walsender decoding ${name} for tera-cdc, per second of its CPU`, "changes/core-s", "raw", rows / Math.max(walsenderCpu, 0.01));
          this.results.add(`subscriber-cpu-${kind}-${batched ? "batched" : "single"}`, `bench subscriber's CPU per message, tera-cdc ${name}, ${mode}`, "µs", "raw", (benchCpu.user + benchCpu.system) / subscriber.messages);
          const payloadBytes = Math.round(subscriber.payloadBytes / subscriber.messages);
          const seconds = await this.recvDrain(`${publication}_slot`, publication);
          this.results.add(`recv-${kind}`, `pg_recvlogical ${name}`, "changes/s", "raw", rows / seconds);
          if (!batched) {
            this.results.add(`payload-${kind}`, `TeraEvent payload ${name}`, "bytes", "tera-cdc", payloadBytes);
            const properties = subscriber.lastProperties;
            const bare = await this.bareMqtt(rows, payloadBytes);
            this.results.add(`bare-${kind}`, `bare mqtt.js QoS 1, ${payloadBytes} B payloads`, "msg/s", "raw", bare.rate);
            this.results.add(`bare-core-${kind}`, `bare mqtt.js QoS 1, ${payloadBytes} B payloads, per second of its CPU`, "msg/core-s", "raw", bare.perCpuSecond);
            this.results.add(`subscriber-cpu-bare-${kind}`, `bench subscriber's CPU per message, bare mqtt.js ${payloadBytes} B payloads`, "µs", "raw", bare.subscriberCpuUs);
            if (kind === "bulk") {
              const bareWithProperties = await this.bareMqtt(rows, payloadBytes, properties);
              this.results.add("bare-props-bulk", `bare mqtt.js QoS 1, ${payloadBytes} B + tera-cdc's user properties`, "msg/s", "raw", bareWithProperties.rate);
              this.results.add("subscriber-cpu-bare-props-bulk", `bench subscriber's CPU per message, bare mqtt.js ${payloadBytes} B + tera-cdc's user properties`, "µs", "raw", bareWithProperties.subscriberCpuUs);
            }
          }
        }
        const memory = this.memoryOf(cdc.child.pid!);
        this.results.add(`rss-${kind}-${batched ? "batched" : "single"}`, `tera-cdc peak RSS ${name} ${rows.toLocaleString("en-US")} rows, ${mode}`, "MB", "memory", memory.peakMb);
      } finally {
        await subscriber.close();
        await this.stopTeraCdc(cdc, slot);
      }
    }
  }

  /**
   * (s) A snapshot at stream speed: SNAPSHOT_ROWS rows inserted in one transaction and streamed
   * live, batched (the base), then the same rows snapshotted through the same `run` (`tera-cdc
   * snapshot`, default chunk size), timed at the subscriber from its start marker to its end marker.
   */
  async snapshot(): Promise<void> {
    const rows = SNAPSHOT_ROWS;
    const table = "bench_snap";
    const moduleName = "bench-snapshot";
    await this.sql(`CREATE TABLE ${table} (id_snap bigint PRIMARY KEY, v int NOT NULL, note text NOT NULL, at timestamptz NOT NULL DEFAULT now())`);
    const slot = "cdc_snapshot";
    const batching = ["--batch-events", String(this.s.batchEvents), "--batch-bytes", String(this.s.batchBytes)];
    const cdc = await this.startTeraCdc(slot, table, [...batching, "--rpc", "--module-name", moduleName]);
    const subscriber = await Subscriber.start(this.broker.url, `${TOPIC_PREFIX}snap`);
    try {
      let nextId = 1;
      for (let rep = 0; rep < this.s.reps; rep++) {
        subscriber.reset();
        subscriber.onMessage = null;
        await this.sql(`TRUNCATE ${table}`);
        await subscriber.waitForEvents(1);
        subscriber.reset();
        const from = nextId;
        nextId += rows;
        await this.sql(this.bulkInsert(table, "id_snap", from, nextId - 1));
        await subscriber.waitForEvents(rows);
        this.results.add("snapshot-live-batched", `tera-cdc the same ${rows.toLocaleString("en-US")} rows live, batched ${this.s.batchEvents}`, "changes/s", "tera-cdc", this.endToEnd(subscriber, rows));
        let startAt = Number.NaN;
        let endAt = Number.NaN;
        let snapshotRows = 0;
        subscriber.onMessage = (_payload, properties, at) => {
          const marker = properties["snapshot-marker"];
          if (marker === "start") startAt = at;
          else if (marker === "end") endAt = at;
          else if (properties.snapshot !== undefined) snapshotRows += properties.count ? Number(properties.count) : 1;
        };
        const cli = runCli(["snapshot", "snap", "--mqtt-url", this.broker.url, "--module-name", moduleName, "--json"]);
        const code = await exited(cli.child, 600_000);
        if (code !== 0) throw new Error(`tera-cdc snapshot exited with ${code}: ${cli.output().stderr.slice(-1000)}`);
        await waitFor("the snapshot's end marker", () => Number.isFinite(endAt), 60_000, 20);
        if (snapshotRows !== rows) throw new Error(`the snapshot published ${snapshotRows} rows, the table holds ${rows}`);
        this.results.add("snapshot-rows", `tera-cdc snapshot of ${rows.toLocaleString("en-US")} rows, start to end marker`, "rows/s", "tera-cdc", rows / ((endAt - startAt) / 1000));
      }
    } finally {
      subscriber.onMessage = null;
      await subscriber.close();
      await this.stopTeraCdc(cdc, slot);
    }
  }

  /** (b): single-row transactions from pgbench, 2 clients, insert/update/delete mix. */
  async pgbenchMix(): Promise<void> {
    const rows = this.s.rows;
    const script = await this.pgbenchTable("bench_row", rows * this.s.reps);
    const publication = "recv_pgbench";
    await this.sql(`CREATE PUBLICATION ${publication} FOR TABLE bench_row`);
    const slot = "cdc_pgbench";
    const cdc = await this.startTeraCdc(slot, "bench_row");
    const subscriber = await Subscriber.start(this.broker.url, `${TOPIC_PREFIX}row`);
    try {
      for (let rep = 0; rep < this.s.reps; rep++) {
        subscriber.reset();
        await this.recvSlot(`${publication}_slot`);
        const tps = await this.pgbench(script, rows);
        await subscriber.waitForEvents(rows);
        this.results.add("pgbench-tps-cdc", "pgbench mix tps while tera-cdc streams", "tx/s", "tera-cdc", tps);
        this.results.add("cdc-pgbench", "tera-cdc (b) pgbench single-row tx", "changes/s", "tera-cdc", this.endToEnd(subscriber, rows));
        const payloadBytes = Math.round(subscriber.payloadBytes / subscriber.messages);
        const seconds = await this.recvDrain(`${publication}_slot`, publication);
        this.results.add("recv-pgbench", "pg_recvlogical (b) pgbench single-row tx", "changes/s", "raw", rows / seconds);
        this.results.add("bare-pgbench", `bare mqtt.js QoS 1, ${payloadBytes} B payloads (b)`, "msg/s", "raw", (await this.bareMqtt(rows, payloadBytes)).rate);
      }
      this.results.add("rss-pgbench", "tera-cdc peak RSS (b) pgbench", "MB", "memory", this.memoryOf(cdc.child.pid!).peakMb);
    } finally {
      await subscriber.close();
      await this.stopTeraCdc(cdc, slot);
    }
  }

  /** Steady single-row INSERTs at `rate`/s; COMMIT as the committing client saw it → subscriber. */
  async latency(): Promise<void> {
    await this.sql("CREATE TABLE bench_lat (id_lat bigserial PRIMARY KEY, v int NOT NULL, at timestamptz NOT NULL DEFAULT now())");
    const slot = "cdc_latency";
    const cdc = await this.startTeraCdc(slot, "bench_lat");
    const subscriber = await Subscriber.start(this.broker.url, `${TOPIC_PREFIX}lat`);
    const received = new Map<number, number>();
    subscriber.onMessage = (payload, _properties, at) => {
      const decoded = decodeTeraEvent(payload);
      if (!decoded.ok) return;
      for (const any of decoded.message.events) {
        const event = unpackAny(any);
        if (event.type === "DatabaseEvent") received.set(Number((JSON.parse(event.message.objectValue) as { id_lat: number }).id_lat), at);
      }
    };
    try {
      for (const rate of this.s.latencyRates) {
        for (let rep = 0; rep < this.s.reps; rep++) {
          received.clear();
          subscriber.reset();
          const total = Math.round(rate * this.s.latencySeconds);
          const warmup = Math.min(500, Math.round(total / 10));
          const clients = rate > 2000 ? 4 : 2;
          const committed = new Map<number, number>();
          const conns = await Promise.all(Array.from({ length: clients }, () => this.pgServer.connect()));
          const started = now();
          await Promise.all(
            conns.map(async (conn, c) => {
              for (let k = c; k < total; k += clients) {
                const due = started + (k * 1000) / rate;
                const wait = due - now();
                if (wait > 1) await sleep(wait);
                const result = await conn.query("INSERT INTO bench_lat (v) VALUES ($1) RETURNING id_lat", [k]);
                committed.set(Number(result.rows[0].id_lat), now());
              }
            }),
          );
          const achieved = total / ((now() - started) / 1000);
          await Promise.all(conns.map((c) => c.end()));
          await subscriber.waitForEvents(total);
          const ids = [...committed.keys()].sort((a, b) => a - b).slice(warmup);
          const latencies = ids.map((id) => (received.get(id) ?? Number.NaN) - committed.get(id)!);
          const missing = latencies.filter((l) => Number.isNaN(l)).length;
          if (missing > 0) throw new Error(`${missing} committed rows never reached the subscriber`);
          const label = `latency at ${rate.toLocaleString("en-US")} tx/s`;
          this.results.add(`lat-${rate}-rate`, `${label}: achieved commit rate`, "tx/s", "latency", achieved);
          this.results.add(`lat-${rate}-p50`, `${label}: p50`, "ms", "latency", percentile(latencies, 50));
          this.results.add(`lat-${rate}-p99`, `${label}: p99`, "ms", "latency", percentile(latencies, 99));
          this.results.add(`lat-${rate}-max`, `${label}: max`, "ms", "latency", Math.max(...latencies));
        }
      }
    } finally {
      await subscriber.close();
      await this.stopTeraCdc(cdc, slot);
    }
  }

  /** Peak RSS of tera-cdc over one transaction of bigRows rows (default settings). */
  async memory(): Promise<void> {
    const rows = this.s.bigRows;
    await this.sql("CREATE TABLE bench_big (id_big bigint PRIMARY KEY, v int NOT NULL, note text NOT NULL, at timestamptz NOT NULL DEFAULT now())");
    const slot = "cdc_big";
    const cdc = await this.startTeraCdc(slot, "bench_big");
    const subscriber = await Subscriber.start(this.broker.url, `${TOPIC_PREFIX}big`);
    let sampledPeak = 0;
    const sampler = setInterval(() => {
      sampledPeak = Math.max(sampledPeak, this.memoryOf(cdc.child.pid!).rssMb);
    }, 100);
    try {
      const before = this.memoryOf(cdc.child.pid!);
      await this.sql(this.bulkInsert("bench_big", "id_big", 1, rows));
      await subscriber.waitForEvents(rows);
      const label = `${rows.toLocaleString("en-US")}-row tx`;
      this.results.add("big-rate", `tera-cdc ${label}, 1 event/message`, "changes/s", "tera-cdc", this.endToEnd(subscriber, rows));
      this.results.add("rss-big-idle", "tera-cdc RSS when streaming starts (idle)", "MB", "memory", before.rssMb);
      this.results.add("rss-big", `tera-cdc peak RSS (VmHWM) ${label}`, "MB", "memory", this.memoryOf(cdc.child.pid!).peakMb);
      this.results.add("rss-big-sampled", `tera-cdc largest VmRSS sampled every 100 ms, ${label}`, "MB", "memory", sampledPeak);
    } finally {
      clearInterval(sampler);
      await subscriber.close();
      await this.stopTeraCdc(cdc, slot);
    }
  }

  /** Trigger + pg_notify on the same pgbench mix: the writer's cost and the listener's rate. */
  async peers(): Promise<void> {
    const rows = this.s.rows;
    const plain = await this.pgbenchTable("bench_plain", rows * this.s.reps);
    const notified = await this.pgbenchTable("bench_notified", rows * this.s.reps);
    await this.sql(`CREATE FUNCTION bench_notify() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        PERFORM pg_notify('bench_changes', json_build_object('op', TG_OP, 'table', TG_TABLE_NAME,
          'row', row_to_json(CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END))::text);
        RETURN NULL;
      END $$`);
    await this.sql("CREATE TRIGGER bench_notify AFTER INSERT OR UPDATE OR DELETE ON bench_notified FOR EACH ROW EXECUTE FUNCTION bench_notify()");
    const listener = await this.pgServer.connect();
    let notifications = 0;
    let lastAt = 0;
    listener.on("notification", (n) => {
      JSON.parse(n.payload ?? "null");
      notifications++;
      lastAt = now();
    });
    await listener.query("LISTEN bench_changes");
    try {
      for (let rep = 0; rep < this.s.reps; rep++) {
        this.results.add("peer-plain-tps", "pgbench mix tps, no trigger, no CDC", "tx/s", "peers", await this.pgbench(plain, rows));
        notifications = 0;
        const started = now();
        const tps = await this.pgbench(notified, rows);
        await waitFor("every notification", () => notifications >= rows, 60_000, 20);
        this.results.add("peer-trigger-tps", "pgbench mix tps with trigger + pg_notify (listener attached)", "tx/s", "peers", tps);
        this.results.add("peer-listener-rate", "pg_notify listener delivery rate", "changes/s", "peers", notifications / ((lastAt - started) / 1000));
      }
    } finally {
      await listener.end();
    }
  }

  /**
   * The cost of the stream's signature (--signing-key-file): the same bulk transaction through
   * `run` unsigned and signed, alternately first, end to end and in `run`'s CPU time per change;
   * and sign() / verify() alone on a typical message, in-process.
   */
  async signing(): Promise<void> {
    const rows = this.s.rows;
    const keyFile = join(this.tmp, "signing.key");
    writeFileSync(keyFile, "bench-signing-key-0123456789abcdef0123456789abcdef\n", { mode: 0o600 });
    await this.sql("CREATE TABLE bench_signed (id_signed bigint PRIMARY KEY, v int NOT NULL, note text NOT NULL, at timestamptz NOT NULL DEFAULT now())");
    let nextId = 1;
    let sample: { topic: string; payload: Buffer; properties: Record<string, string> } | null = null;
    for (let rep = 0; rep < this.s.reps; rep++) {
      const order = rep % 2 === 0 ? [false, true] : [true, false];
      for (const withKey of order) {
        const slot = `cdc_signing_${withKey ? "on" : "off"}_${rep}`;
        const cdc = await this.startTeraCdc(slot, "bench_signed", withKey ? ["--signing-key-file", keyFile] : []);
        const subscriber = await Subscriber.start(this.broker.url, `${TOPIC_PREFIX}signed`);
        try {
          const cpuBefore = cpuSecondsOf(cdc.child.pid!);
          const from = nextId;
          nextId += rows;
          await this.sql(this.bulkInsert("bench_signed", "id_signed", from, nextId - 1));
          await subscriber.waitForEvents(rows);
          const cpu = cpuSecondsOf(cdc.child.pid!) - cpuBefore;
          const id = withKey ? "signed" : "unsigned";
          const label = withKey ? "signed (--signing-key-file)" : "unsigned";
          this.results.add(`cdc-sign-${id}`, `tera-cdc bulk 1 tx, 1 event/message, ${label}`, "changes/s", "tera-cdc", this.endToEnd(subscriber, rows));
          this.results.add(`cpu-sign-${id}`, `tera-cdc CPU per change, ${label}`, "µs", "tera-cdc", (cpu / rows) * 1e6);
          if (withKey && subscriber.lastProperties.sig === undefined) throw new Error("signed run published a message without sig");
          if (withKey) sample = { topic: `${TOPIC_PREFIX}signed`, payload: subscriber.lastPayload, properties: subscriber.lastProperties };
        } finally {
          await subscriber.close();
          await this.stopTeraCdc(cdc, slot);
        }
      }
    }
    if (!sample) return;
    // sign() and verify() alone, on the last message the signed run published.
    const key = Buffer.from("bench-signing-key-0123456789abcdef0123456789abcdef");
    const { sig: _sig, ...plain } = sample.properties;
    const props = signed(key, sample.topic, sample.payload, plain);
    const iterations = 100_000;
    for (const [id, label, work] of [
      ["sign-us", `sign() alone, ${sample.payload.length} B payload + ${Object.keys(plain).length} properties`, () => sign(key, sample.topic, sample.payload, plain)],
      ["verify-us", `verify() alone, ${sample.payload.length} B payload + ${Object.keys(plain).length} properties`, () => verify(key, sample.topic, sample.payload, props)],
    ] as const) {
      for (let i = 0; i < 5_000; i++) work();
      const started = performance.now();
      for (let i = 0; i < iterations; i++) work();
      this.results.add(id, label, "µs", "tera-cdc", ((performance.now() - started) * 1000) / iterations);
    }
  }

  /** The Redis sink (bench/redis.ts): tera-cdc --redis-url beside a bare node-redis publisher. */
  async redis(): Promise<void> {
    await benchRedis({
      rows: this.s.rows,
      reps: this.s.reps,
      inFlight: this.s.inFlight,
      sql: (text) => this.sql(text),
      startTeraCdc: (name, table, redisUrl) => this.startTeraCdc(name, table, [], { redisUrl }),
      stopTeraCdc: (cdc, slot) => this.stopTeraCdc(cdc, slot),
      add: (id, label, unit, group, value) => this.results.add(id, label, unit, group, value),
    });
  }

  /** WebSocket fan-out of the gateway against a bare ws broadcast (bench/gateway.ts). */
  async gateway(): Promise<void> {
    await gatewayBench({
      databaseUrl: this.pgServer.url,
      mqttUrl: this.broker.url,
      quick: this.s.quick,
      add: (id, label, unit, group, value) => this.results.add(id, label, unit, group, value),
      log,
    });
  }

  summarize(): { figures: Figure[]; ratios: Ratio[]; targets: Target[] } {
    const figures = this.results.figures();
    const byId = new Map(figures.map((f) => [f.id, f]));
    const ratios = [
      ratio("(a) tera-cdc 1 event/message / bare mqtt.js QoS 1", byId, "cdc-bulk-single", "bare-bulk"),
      ratio("(a) tera-cdc 1 event/message / bare mqtt.js QoS 1 with the same user properties", byId, "cdc-bulk-single", "bare-props-bulk"),
      ratio("(a) tera-cdc 1 event/message / bare mqtt.js QoS 1, per second of each one's CPU", byId, "core-bulk-single", "bare-core-bulk"),
      ratio("(a) tera-cdc batched / pg_recvlogical", byId, "cdc-bulk-batched", "recv-bulk"),
      ratio("(a) tera-cdc 1 event/message / pg_recvlogical", byId, "cdc-bulk-single", "recv-bulk"),
      ratio("(s) snapshot rows/s / the same rows live, batched", byId, "snapshot-rows", "snapshot-live-batched"),
      ratio("(b) tera-cdc / bare mqtt.js QoS 1", byId, "cdc-pgbench", "bare-pgbench"),
      ratio("(b) tera-cdc / pg_recvlogical", byId, "cdc-pgbench", "recv-pgbench"),
      ratio("(b) tera-cdc / pgbench commit rate", byId, "cdc-pgbench", "pgbench-tps-cdc"),
      ratio("(c) tera-cdc 1 event/message / bare mqtt.js QoS 1", byId, "cdc-opentera-single", "bare-opentera"),
      ratio("(c) tera-cdc batched / pg_recvlogical", byId, "cdc-opentera-batched", "recv-opentera"),
      ratio("peers: pgbench tps with trigger / without", byId, "peer-trigger-tps", "peer-plain-tps"),
      ratio("signing: changes/s signed / unsigned", byId, "cdc-sign-signed", "cdc-sign-unsigned"),
      ratio("redis: tera-cdc 1 event/PUBLISH / bare node-redis PUBLISH", byId, "cdc-redis-single", "bare-redis"),
      ratio("signing: run's CPU per change signed / unsigned", byId, "cpu-sign-signed", "cpu-sign-unsigned"),
      ratio("peers: pgbench tps with tera-cdc streaming / without trigger or CDC", byId, "pgbench-tps-cdc", "peer-plain-tps"),
      ratio("gateway: deliveries/s at saturation / bare ws broadcast", byId, GATEWAY_FIGURES.saturation, GATEWAY_FIGURES.bareSaturation),
      ratio("gateway: server CPU at steady rate / bare ws broadcast", byId, GATEWAY_FIGURES.steadyCpu, GATEWAY_FIGURES.bareSteadyCpu),
      ratio("gateway: deliveries per server CPU-second / bare ws broadcast", byId, GATEWAY_FIGURES.perCore, GATEWAY_FIGURES.barePerCore),
    ].filter((r): r is Ratio => r !== null);
    const ratioOf = (n: string, d: string) => ratios.find((r) => r.numerator === n && r.denominator === d)?.value;
    const targets = [
      target("(a) 1 event/message QoS 1 ≥ 0.8 × bare client", "cdc-bulk-single", ratioOf("cdc-bulk-single", "bare-bulk"), 0.8, "at-least"),
      target("(a) batched ≥ 0.7 × pg_recvlogical", "cdc-bulk-batched", ratioOf("cdc-bulk-batched", "recv-bulk"), 0.7, "at-least"),
      target(`(s) snapshot of ${SNAPSHOT_ROWS.toLocaleString("en-US")} rows ≥ 0.7 × batched live rate`, "snapshot-rows", ratioOf("snapshot-rows", "snapshot-live-batched"), 0.7, "at-least"),
      target("latency at 1,000 tx/s p50 < 5 ms", "lat-1000-p50", byId.get("lat-1000-p50")?.median, 5, "below"),
      target("latency at 1,000 tx/s p99 < 25 ms", "lat-1000-p99", byId.get("lat-1000-p99")?.median, 25, "below"),
      target(`peak RSS, ${this.s.bigRows.toLocaleString("en-US")}-row tx < 150 MB`, "rss-big", byId.get("rss-big")?.median, 150, "below"),
      target("gateway ≥ 150,000 deliveries/s (measured rate)", GATEWAY_FIGURES.saturation, byId.get(GATEWAY_FIGURES.saturation)?.median, 150_000, "at-least"),
      target("gateway ≥ 150,000 deliveries per CPU-second of its process", GATEWAY_FIGURES.perCore, byId.get(GATEWAY_FIGURES.perCore)?.median, 150_000, "at-least"),
      target("gateway p99 COMMIT → client < 100 ms at the steady rate", GATEWAY_FIGURES.steadyP99, byId.get(GATEWAY_FIGURES.steadyP99)?.median, 100, "below"),
    ].filter((t): t is Target => t !== null);
    return { figures, ratios, targets };
  }
}

/** User + system CPU seconds a process has used so far (/proc/<pid>/stat, clock ticks of 1/100 s). */
function cpuSecondsOf(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // After the command name: state is field 3, utime 14 and stime 15 (1-based, man 5 proc).
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

async function main(): Promise<void> {
  const options = parseArgs(process.argv.slice(2));
  const s = options.settings;
  const startedAt = new Date();
  log(`${s.quick ? "quick" : "full"} run: ${s.rows.toLocaleString("en-US")} changes per run, ${s.reps} repetition(s), sections ${[...options.only].join(",")}`);
  const bench = new Bench(options);
  let failure: Error | null = null;
  try {
    await bench.setUp();
    if (options.only.has("bulk")) await bench.bulk("bulk");
    if (options.only.has("snapshot")) await bench.snapshot();
    if (options.only.has("pgbench")) await bench.pgbenchMix();
    if (options.only.has("opentera")) await bench.bulk("opentera");
    if (options.only.has("latency")) await bench.latency();
    if (options.only.has("memory")) await bench.memory();
    if (options.only.has("peers")) await bench.peers();
    if (options.only.has("signing")) await bench.signing();
    if (options.only.has("redis")) await bench.redis();
    if (options.only.has("gateway")) await bench.gateway();
  } catch (error) {
    failure = error as Error;
  } finally {
    await bench.tearDown();
  }
  const { figures, ratios, targets } = bench.summarize();
  const seconds = (Date.now() - startedAt.getTime()) / 1000;
  const machine = `${cpus().length} × ${cpus()[0]?.model ?? "cpu"}, load ${loadavg().map((l) => l.toFixed(1)).join(" ")}, Node ${process.versions.node}`;
  process.stdout.write(`\ntera-cdc benchmark (${s.quick ? "quick" : "full"}, ${s.rows.toLocaleString("en-US")} changes per run, medians of ${s.reps}) on ${machine}, ${seconds.toFixed(0)} s\n\n`);
  process.stdout.write(`${renderTable(figures, ratios, targets)}\n`);
  if (options.jsonFile) {
    writeFileSync(options.jsonFile, `${JSON.stringify({ startedAt: startedAt.toISOString(), seconds, machine, settings: s, figures, ratios, targets, error: failure?.message ?? null }, null, 2)}\n`);
    log(`wrote ${options.jsonFile}`);
  }
  if (options.svgFile) {
    const panel = (title: string, unit: string, ids: (f: Figure) => boolean) => ({ title, unit, figures: figures.filter(ids) });
    writeFileSync(
      options.svgFile,
      renderSvg(`tera-cdc benchmark (${s.quick ? "quick" : "full"}), ${machine}`, [
        panel("Throughput", "changes or messages per second", (f) => f.unit === "changes/s" || f.unit === "msg/s"),
        panel("Writer throughput", "transactions per second", (f) => f.unit === "tx/s" && f.group !== "latency"),
        panel("Latency, COMMIT to subscriber", "ms", (f) => f.unit === "ms"),
        panel("Memory", "MB", (f) => f.unit === "MB"),
      ]),
    );
    log(`wrote ${options.svgFile}`);
  }
  if (failure) {
    process.stderr.write(`benchmark failed: ${failure.stack ?? failure.message}\n`);
    process.exit(1);
  }
  process.exit(0);
}

await main();
