import type { ChildProcess } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import mqtt from "mqtt";
import { freePort, waitFor } from "./ports.js";
import { exited, spawnTracked } from "./processes.js";

const NATS_SERVER = process.env.TERA_CDC_NATS_SERVER ?? "/usr/sbin/nats-server";

export interface NatsNode {
  readonly name: string;
  /** Its MQTT listener (MQTT 3.1.1, QoS 0 and 1 only). */
  readonly mqttUrl: string;
  /** SIGKILL: the node is lost, as a crashed machine would be. */
  kill(): Promise<void>;
}

export interface NatsCluster {
  readonly nodes: readonly NatsNode[];
  /** Every node's output so far (for a failure's message). */
  logs(): string;
  close(): Promise<void>;
}

/**
 * A NATS cluster of `size` nats-server processes (Debian's package) on free loopback ports, routed
 * to each other, with JetStream (each node its own store folder) and an MQTT listener on each.
 * NATS's MQTT needs JetStream and a server name; its MQTT streams are replicated on three nodes
 * (`stream_replicas`), so the sessions and QoS 1 messages outlive the loss of one node. Resolves
 * once every node admits an MQTT client and a QoS 1 subscription, i.e. JetStream has a leader and
 * the MQTT streams exist.
 */
export async function startNatsCluster(size = 3): Promise<NatsCluster> {
  const dir = mkdtempSync(join(tmpdir(), "tera-cdc-nats-"));
  const ports = await Promise.all(Array.from({ length: size }, async () => ({ client: await freePort(), cluster: await freePort(), mqtt: await freePort() })));
  const routes = ports.map((p) => `nats-route://127.0.0.1:${p.cluster}`).join(", ");
  const children: ChildProcess[] = [];
  const output: string[] = ports.map(() => "");
  const nodes: NatsNode[] = ports.map((p, i) => {
    const name = `n${i + 1}`;
    const store = join(dir, `store-${name}`);
    mkdirSync(store);
    const config = [
      `server_name: ${name}`,
      `listen: 127.0.0.1:${p.client}`,
      `cluster { name: tera_cdc_test, listen: 127.0.0.1:${p.cluster}, routes: [${routes}] }`,
      "jetstream { max_memory_store: 64MB, max_file_store: 1GB }",
      `mqtt { listen: 127.0.0.1:${p.mqtt}, stream_replicas: ${Math.min(size, 3)} }`,
    ].join("\n");
    const file = join(dir, `${name}.conf`);
    writeFileSync(file, `${config}\n`);
    const child = spawnTracked(NATS_SERVER, ["-c", file, "-sd", store], { stdio: ["ignore", "pipe", "pipe"] });
    const keep = (d: Buffer) => (output[i] = (output[i] + d.toString()).slice(-20_000));
    child.stdout?.on("data", keep);
    child.stderr?.on("data", keep);
    children.push(child);
    return {
      name,
      mqttUrl: `mqtt://127.0.0.1:${p.mqtt}`,
      async kill() {
        if (child.exitCode !== null || child.signalCode !== null) return;
        child.kill("SIGKILL");
        await exited(child);
      },
    };
  });
  // A killed node's peers retry its route every second: those lines would crowd out the rest.
  const logs = () => nodes.map((n, i) => `--- ${n.name}\n${output[i]!.split("\n").filter((l) => !/Error trying to connect to route/.test(l)).join("\n").slice(-4000)}`).join("\n");
  const close = async () => {
    await Promise.all(nodes.map((n) => n.kill()));
    rmSync(dir, { recursive: true, force: true });
  };
  // One deadline for the whole cluster, within the 120 s a test file's servers get to start.
  const deadline = Date.now() + 90_000;
  try {
    for (const [i, node] of nodes.entries()) {
      await waitFor(`NATS node ${node.name} to admit MQTT clients`, async () => {
        if (children[i]!.exitCode !== null) throw new Error(`nats-server ${node.name} exited: ${output[i]!.slice(-2000)}`);
        return admitsSubscriber(node.mqttUrl, `probe-${node.name}`);
      }, Math.max(1000, deadline - Date.now()), 250);
    }
  } catch (error) {
    const shown = logs();
    await close();
    throw new Error(`${(error as Error).message}\n${shown}`);
  }
  return { nodes, logs, close };
}

/** Whether the node takes an MQTT connection and a QoS 1 subscription within 5 s (NATS holds both back until JetStream is ready). */
async function admitsSubscriber(url: string, clientId: string): Promise<boolean> {
  const client = mqtt.connect(url, { protocolVersion: 4, reconnectPeriod: 0, connectTimeout: 5000, clientId });
  client.on("error", () => {});
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), 5000)));
  const admitted = (async () => {
    await new Promise<void>((resolve, reject) => {
      client.once("connect", () => resolve());
      client.once("close", () => reject(new Error("closed")));
    });
    const granted = await client.subscribeAsync("tera-cdc-probe/#", { qos: 1 });
    return granted[0]?.qos === 1;
  })().catch(() => false);
  try {
    return await Promise.race([admitted, timeout]);
  } finally {
    clearTimeout(timer);
    client.end(true);
  }
}
