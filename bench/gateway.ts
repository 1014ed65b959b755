/**
 * The gateway section of `npm run bench` (issue 18 point 5): WebSocket fan-out of one model to
 * many clients, measured on the real parts: PostgreSQL, `tera-cdc run`, Mosquitto, `tera-cdc
 * gateway` in its own process, and the clients in another (bench/gateway-clients.mjs, N sockets).
 * Side by side with the limit: a bare `ws` broadcast of the same frames (bench/bare-broadcast.mjs),
 * fed by the same broker topic, with the same clients.
 *
 * Two phases per server: steady (N clients × 20 changes/s, one change per transaction: deliveries/s,
 * p50/p99 COMMIT → client, server CPU) and saturation (more changes/s than the server can fan out:
 * the deliveries/s it sustains). Every change is an UPDATE of one row visible to every client,
 * whose tokens fall into ten claim sets (audiences), so the rules run for each.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import type { ChildProcess } from "node:child_process";
import pg from "pg";
import { signToken } from "../src/gateway/auth.js";
import { runCli, startCdc } from "../test/harness/cdc.js";
import { freePort, waitFor } from "../test/harness/ports.js";
import { exited, spawnTracked } from "../test/harness/processes.js";
import type { Figure } from "./report.js";

const CLIENTS_SCRIPT = join(import.meta.dirname, "gateway-clients.mjs");
const BARE_SCRIPT = join(import.meta.dirname, "bare-broadcast.mjs");
const TABLE = "bench_gw";
const MODEL = "gw";
const ROWS = 200;
const SECRET = "bench-gateway-secret-0123456789abcdef0123456789";

export interface GatewayBenchContext {
  readonly databaseUrl: string;
  readonly mqttUrl: string;
  readonly quick: boolean;
  add(id: string, label: string, unit: string, group: Figure["group"], value: number): void;
  log(text: string): void;
}

interface Plan {
  readonly clients: number;
  readonly steadyRate: number;
  readonly steadySeconds: number;
  readonly saturationRate: number;
  readonly saturationSeconds: number;
}

const FULL: Plan = { clients: 3000, steadyRate: 20, steadySeconds: 20, saturationRate: 300, saturationSeconds: 5 };
const QUICK: Plan = { clients: 500, steadyRate: 20, steadySeconds: 6, saturationRate: 300, saturationSeconds: 4 };

/** The figure ids this section adds, for bench.ts's ratios and targets. */
export const GATEWAY_FIGURES = {
  steadyP99: "gw-steady-p99",
  saturation: "gw-saturation",
  bareSaturation: "bare-gw-saturation",
  perCore: "gw-per-core",
  barePerCore: "bare-gw-per-core",
  steadyCpu: "gw-steady-cpu",
  bareSteadyCpu: "bare-gw-steady-cpu",
} as const;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** User + system CPU seconds of a process so far (/proc/<pid>/stat, ticks of 1/100 s). */
function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** Peak resident set of a process so far, in MB (VmHWM). */
function peakRssMb(pid: number): number {
  const match = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return match ? Number(match[1]) / 1024 : Number.NaN;
}

interface Report {
  deliveries: number;
  firstAt: number;
  lastAt: number;
  p50: number;
  p99: number;
  max: number;
  closed: number;
  metaWithoutCommitTime: number;
}

/** The clients' process: one JSON line per command. */
class Clients {
  private readonly lines: string[] = [];
  private wake: (() => void) | null = null;

  private constructor(readonly child: ChildProcess) {
    createInterface({ input: child.stdout! }).on("line", (line) => {
      this.lines.push(line);
      this.wake?.();
    });
  }

  static async start(options: { url: string; count: number; tokens: string[]; bare: boolean }): Promise<Clients> {
    const child = spawnTracked(process.execPath, [CLIENTS_SCRIPT, JSON.stringify({ ...options, model: MODEL })], { stdio: ["pipe", "pipe", "inherit"] });
    const clients = new Clients(child);
    const ready = JSON.parse(await clients.next(120_000)) as { ready: number };
    if (ready.ready !== options.count) throw new Error(`only ${ready.ready} of ${options.count} clients subscribed`);
    return clients;
  }

  private async next(timeoutMs = 30_000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    while (this.lines.length === 0) {
      if (this.child.exitCode !== null) throw new Error(`the clients' process exited with ${this.child.exitCode}`);
      if (Date.now() > deadline) throw new Error("the clients' process did not answer");
      await new Promise<void>((resolve) => {
        this.wake = resolve;
        setTimeout(resolve, 200);
      });
    }
    return this.lines.shift()!;
  }

  async command(line: "reset" | "report"): Promise<Report> {
    this.child.stdin!.write(`${line}\n`);
    return JSON.parse(await this.next()) as Report;
  }

  async stop(): Promise<void> {
    this.child.stdin!.write("exit\n");
    if ((await exited(this.child, 10_000)) === null) this.child.kill("SIGKILL");
  }
}

/** One UPDATE per transaction at `rate` per second for `seconds`; returns the commits and when the first began. */
async function drive(db: pg.Client, rate: number, seconds: number): Promise<{ commits: number; startedAt: number }> {
  const startedAt = Date.now();
  const total = Math.round(rate * seconds);
  let commits = 0;
  for (let i = 0; i < total; i++) {
    const due = startedAt + (i * 1000) / rate;
    const wait = due - Date.now();
    if (wait > 0) await sleep(wait);
    await db.query(`UPDATE ${TABLE} SET n = n + 1 WHERE id_gw = ${(i % ROWS) + 1}`);
    commits++;
  }
  return { commits, startedAt };
}

/** Waits until the clients hold `expected` deliveries, or they stop coming for 5 s. */
async function drained(clients: Clients, expected: number): Promise<Report> {
  let report = await clients.command("report");
  let last = report.deliveries;
  let still = Date.now();
  while (report.deliveries < expected && Date.now() - still < 5000) {
    await sleep(250);
    report = await clients.command("report");
    if (report.deliveries !== last) {
      last = report.deliveries;
      still = Date.now();
    }
  }
  return report;
}

interface Server {
  readonly name: string;
  readonly label: string;
  readonly pid: number;
  readonly url: string;
  readonly tokens: string[];
  readonly bare: boolean;
  readonly group: Figure["group"];
  /** Throws, with the end of its log, when the server process has exited. */
  check(): void;
  stop(): Promise<void>;
}

async function measure(ctx: GatewayBenchContext, db: pg.Client, server: Server, plan: Plan): Promise<void> {
  const clients = await Clients.start({ url: server.url, count: plan.clients, tokens: server.tokens, bare: server.bare });
  const n = plan.clients;
  try {
    // Warm-up: JIT, socket buffers, the ring; measured only once all of it has arrived.
    await clients.command("reset");
    const warmUp = await drive(db, plan.steadyRate, 2);
    await drained(clients, warmUp.commits * n);

    await clients.command("reset");
    let cpu = cpuSeconds(server.pid);
    let clientsCpu = cpuSeconds(clients.child.pid!);
    const steady = await drive(db, plan.steadyRate, plan.steadySeconds);
    let report = await drained(clients, steady.commits * n);
    server.check();
    const steadyWall = (report.lastAt - steady.startedAt) / 1000;
    const steadyCpu = ((cpuSeconds(server.pid) - cpu) / steadyWall) * 100;
    const what = `${n.toLocaleString("en-US")} clients × ${plan.steadyRate} changes/s`;
    if (report.deliveries !== steady.commits * n || report.closed > 0) {
      ctx.log(`${server.label}: ${report.deliveries} of ${steady.commits * n} deliveries arrived, ${report.closed} clients closed`);
    }
    ctx.add(`${server.name}-steady`, `${server.label}, ${what}: deliveries`, "deliveries/s", server.group, report.deliveries / steadyWall);
    ctx.add(`${server.name}-steady-p50`, `${server.label}, ${what}: COMMIT → client p50`, "ms", "latency", report.p50);
    ctx.add(`${server.name}-steady-p99`, `${server.label}, ${what}: COMMIT → client p99`, "ms", "latency", report.p99);
    ctx.add(`${server.name}-steady-cpu`, `${server.label}, ${what}: server CPU`, "% of a core", server.group, steadyCpu);
    ctx.add(`${server.name}-steady-clients-cpu`, `${server.label}, ${what}: the clients' process CPU`, "% of a core", server.group, ((cpuSeconds(clients.child.pid!) - clientsCpu) / steadyWall) * 100);

    await clients.command("reset");
    cpu = cpuSeconds(server.pid);
    clientsCpu = cpuSeconds(clients.child.pid!);
    const saturation = await drive(db, plan.saturationRate, plan.saturationSeconds);
    report = await drained(clients, saturation.commits * n);
    server.check();
    const wall = (report.lastAt - saturation.startedAt) / 1000;
    const offered = `${n.toLocaleString("en-US")} clients × ${saturation.commits} changes in ${plan.saturationSeconds} s`;
    ctx.add(`${server.name}-saturation`, `${server.label}, ${offered}: deliveries`, "deliveries/s", server.group, report.deliveries / wall);
    ctx.add(`${server.name}-saturation-p99`, `${server.label}, ${offered}: COMMIT → client p99`, "ms", "latency", report.p99);
    const saturationCpu = cpuSeconds(server.pid) - cpu;
    // When this is near 100 %, the clients, not the server, set the rate.
    ctx.add(`${server.name}-saturation-clients-cpu`, `${server.label}, ${offered}: the clients' process CPU`, "% of a core", server.group, ((cpuSeconds(clients.child.pid!) - clientsCpu) / wall) * 100);
    ctx.add(`${server.name}-saturation-cpu`, `${server.label}, ${offered}: server CPU`, "% of a core", server.group, (saturationCpu / wall) * 100);
    // On a shared 2-core machine the clients' process (parsing every frame) or other load may be
    // what stops the rate; this is what one core of the server process would sustain.
    ctx.add(`${server.name}-per-core`, `${server.label}, ${offered}: deliveries per server CPU-second`, "deliveries/s", server.group, report.deliveries / saturationCpu);
    if (report.deliveries !== saturation.commits * n) ctx.log(`${server.label} saturation: ${report.deliveries} of ${saturation.commits * n} deliveries arrived`);
    ctx.add(`${server.name}-rss`, `${server.label}, ${n.toLocaleString("en-US")} clients: peak RSS`, "MB", "memory", peakRssMb(server.pid));
  } finally {
    await clients.stop();
  }
}

async function startGateway(ctx: GatewayBenchContext, dir: string): Promise<Server> {
  const rules = join(dir, "rules.yaml");
  writeFileSync(rules, `models:\n  ${MODEL}:\n    rows:\n      - { column: id_site, in-claim: sites }\n`);
  const port = await freePort();
  const { child, output } = runCli(
    ["gateway", "--mqtt-url", ctx.mqttUrl, "--rules", rules, "--host", "127.0.0.1", "--port", String(port), "--log-level", "warn", "--max-client-buffer", String(16 * 1024 * 1024)],
    { TERA_CDC_GATEWAY_AUTH_SECRET: SECRET },
  );
  await waitFor("the gateway to be connected", async () => {
    if (child.exitCode !== null) throw new Error(`the gateway exited with ${child.exitCode}: ${output().stderr.slice(-2000)}`);
    return (await fetch(`http://127.0.0.1:${port}/healthz`).catch(() => null))?.status === 200 || undefined;
  }, 60_000, 200);
  // Ten claim sets (audiences), each seeing every row (all rows are on site 1).
  const tokens = await Promise.all(Array.from({ length: 10 }, (_, k) => signToken({ secret: SECRET, claims: { sub: `bench-${k}`, sites: [1, 100 + k] }, expiresIn: "2h" })));
  return {
    name: "gw",
    label: "tera-cdc gateway",
    pid: child.pid!,
    url: `ws://127.0.0.1:${port}/ws`,
    tokens,
    bare: false,
    group: "tera-cdc",
    check() {
      if (child.exitCode !== null || child.signalCode !== null) throw new Error(`the gateway exited (${child.exitCode ?? child.signalCode}): ${output().stderr.slice(-3000)}`);
    },
    async stop() {
      child.kill("SIGTERM");
      if ((await exited(child, 20_000)) === null) child.kill("SIGKILL");
    },
  };
}

async function startBare(ctx: GatewayBenchContext): Promise<Server> {
  const child = spawnTracked(process.execPath, [BARE_SCRIPT, JSON.stringify({ mqttUrl: ctx.mqttUrl, topic: `module/TeraServer/DatabaseModule/events/${MODEL}` })], { stdio: ["ignore", "pipe", "inherit"] });
  const line = await new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout! }).once("line", resolve);
    child.once("exit", (code) => reject(new Error(`the bare broadcaster exited with ${code}`)));
  });
  const { port } = JSON.parse(line) as { port: number };
  return {
    name: "bare-gw",
    label: "bare ws broadcast",
    pid: child.pid!,
    url: `ws://127.0.0.1:${port}`,
    tokens: [""],
    bare: true,
    group: "raw",
    check() {
      if (child.exitCode !== null || child.signalCode !== null) throw new Error(`the bare broadcaster exited (${child.exitCode ?? child.signalCode})`);
    },
    async stop() {
      child.kill("SIGTERM");
      if ((await exited(child, 10_000)) === null) child.kill("SIGKILL");
    },
  };
}

export async function gatewayBench(ctx: GatewayBenchContext): Promise<void> {
  const plan = ctx.quick ? QUICK : FULL;
  const dir = mkdtempSync(join(tmpdir(), "tera-cdc-bench-gw-"));
  const db = new pg.Client({ connectionString: ctx.databaseUrl });
  await db.connect();
  await db.query(`CREATE TABLE ${TABLE} (id_gw int PRIMARY KEY, id_site int NOT NULL, name text NOT NULL, n int NOT NULL DEFAULT 0)`);
  await db.query(`INSERT INTO ${TABLE} (id_gw, id_site, name) SELECT g, 1, 'device ' || g FROM generate_series(1, ${ROWS}) g`);
  const cdc = await startCdc({ databaseUrl: ctx.databaseUrl, mqttUrl: ctx.mqttUrl, args: ["--tables", TABLE, "--slot", "cdc_gw", "--publication", "cdc_gw", "--log-level", "warn"] });
  try {
    for (const start of [() => startGateway(ctx, dir), () => startBare(ctx)]) {
      const server = await start();
      try {
        ctx.log(`${server.label}: ${plan.clients} clients`);
        await measure(ctx, db, server, plan);
      } finally {
        await server.stop();
      }
    }
  } finally {
    await cdc.stop();
    await db.end();
    rmSync(dir, { recursive: true, force: true });
  }
}
