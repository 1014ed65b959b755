import { randomBytes } from "node:crypto";
import type { MqttClient } from "mqtt";
import { connectBroker, mqttCredentials, RECONNECT_STEADY_MS } from "../mqtt/connect.js";
import { ConfigError, parseSettings, type SettingSpec } from "../config.js";
import { LOCAL_DATA_DIR_SETTING, withLocalServices } from "../embedded/local.js";
import { moduleRpcTopic, toMqttTopic } from "../messages/index.js";
import { intValue, RpcClient, stringValue } from "../rpc/client.js";
import { FilterError, parseFriendlyFilter } from "../snapshot/filter.js";
import { formatSeconds, parseSnapshotReport, progressLine, progressTopic, type SnapshotReport } from "../snapshot/protocol.js";
import { helpText, required } from "./help.js";

const USAGE = "Usage: tera-cdc snapshot <model> [--where CONDITIONS] [--mqtt-url URL] [--module-name NAME] [--json]";
const EXAMPLES = [
  "tera-cdc snapshot device --mqtt-url mqtt://broker:1883",
  "tera-cdc snapshot device --where \"id_site = 3\" --json",
  "tera-cdc snapshot session --where \"session_status in (1, 2) and id_creator_user is not null\"",
];

export const SNAPSHOT_SETTINGS = [
  { name: "mqtt-url", env: "TERA_CDC_MQTT_URL", kind: { type: "url", schemes: ["mqtt", "mqtts", "ws", "wss", "tcp", "ssl"], brokerList: true }, help: "MQTT broker URL, or a comma-separated list of a cluster's brokers" },
  { name: "module-name", env: "TERA_CDC_MODULE_NAME", kind: { type: "string" }, default: "tera-cdc", help: "module name of the tera-cdc to ask (its RPC topic is module/<name>/rpc)" },
  { name: "where", kind: { type: "string" }, help: "only rows matching: conditions joined by and, each column =, <>, <, <=, >, >= a value, column in (v, ...), column is [not] null; values are numbers, 'text', true, false (not SQL: tera-cdc checks each column)" },
  { name: "reply-prefix", env: "TERA_CDC_REPLY_PREFIX", kind: { type: "string" }, default: "tera-cdc/cli/", help: "prefix of this command's reply topic (one of tera-cdc's rpc-reply-prefixes; the broker ACL should let only you read it)" },
  { name: "json", kind: { type: "bool" }, default: false, help: "print the final report as JSON on stdout, no progress bar" },
  { name: "timeout", env: "TERA_CDC_SNAPSHOT_TIMEOUT", kind: { type: "int", min: 1, max: 86400 }, default: 3600, help: "seconds to wait for the snapshot to end" },
  { name: "mqtt-username", env: "TERA_CDC_MQTT_USERNAME", kind: { type: "string" }, help: "broker user name" },
  { name: "mqtt-password", env: "TERA_CDC_MQTT_PASSWORD", kind: { type: "string" }, help: "broker password", secret: true },
  { name: "mqtt-ca", env: "TERA_CDC_MQTT_CA", kind: { type: "file" }, help: "CA certificate file for mqtts:// and wss://" },
  { name: "mqtt-cert", env: "TERA_CDC_MQTT_CERT", kind: { type: "file" }, help: "client certificate file" },
  { name: "mqtt-key", env: "TERA_CDC_MQTT_KEY", kind: { type: "file" }, help: "client private key file" },
  LOCAL_DATA_DIR_SETTING,
] as const satisfies readonly SettingSpec[];

/** The seconds without a reply after which the request counts as unanswered. */
const REPLY_TIMEOUT_MS = 15_000;

/**
 * `tera-cdc snapshot <model>`: asks a running tera-cdc over OpenTera RPC for a snapshot, shows
 * its progress until the end marker, then a summary. Ctrl-C cancels the snapshot.
 */
export async function snapshotCommand(argv: string[]): Promise<number> {
  const parsed = parseSettings(SNAPSHOT_SETTINGS, argv, process.env, { allowConfigFile: false });
  if (parsed.help) {
    process.stdout.write(helpText(USAGE, SNAPSHOT_SETTINGS, EXAMPLES));
    return 0;
  }
  const v = withLocalServices(SNAPSHOT_SETTINGS, parsed.values);
  const [model, extra] = parsed.positional;
  if (!model) throw new ConfigError("the model to snapshot is missing: tera-cdc snapshot <model> (tera-cdc's status RPC lists the models)");
  if (extra) throw new ConfigError(`unexpected argument "${extra}": give one model; quote a --where condition`);
  const mqttUrl = required(SNAPSHOT_SETTINGS, v, "mqtt-url");
  const moduleName = v["module-name"];
  const json = v.json;
  const clientId = `tera-cdc-snapshot-${randomBytes(4).toString("hex")}`;
  const replyTopic = `${v["reply-prefix"]}${clientId}/reply`;
  let filter: string | null = null;
  if (v.where !== undefined) {
    try {
      filter = JSON.stringify(parseFriendlyFilter(v.where));
    } catch (error) {
      if (error instanceof FilterError) throw new ConfigError(`setting where: ${error.message}`);
      throw error;
    }
  }
  const rpcTopic = toMqttTopic(moduleRpcTopic(moduleName));
  const { client } = await connectBroker(mqttUrl, mqttCredentials(v), { clientId, clean: true, reconnectPeriod: RECONNECT_STEADY_MS });
  try {
    return await follow(client, { model, filter, json, moduleName, replyTopic, rpcTopic, timeoutMs: v.timeout * 1000 });
  } finally {
    await client.endAsync(true).catch(() => {});
  }
}

async function follow(
  client: MqttClient,
  o: { model: string; filter: string | null; json: boolean; moduleName: string; replyTopic: string; rpcTopic: string; timeoutMs: number },
): Promise<number> {
  const rpc = new RpcClient({
    rpcTopic: o.rpcTopic,
    replyTopic: o.replyTopic,
    timeoutMs: REPLY_TIMEOUT_MS,
    unanswered: (method) => `no reply to ${method} on ${o.rpcTopic} within ${REPLY_TIMEOUT_MS / 1000} s: is tera-cdc running with --module-name ${o.moduleName} and RPC on, and may this client publish there?`,
    publish: (topic, bytes) => client.publish(topic, Buffer.from(bytes), { qos: 1 }),
  });
  const reports = new Map<number, SnapshotReport>();
  let onReport: (report: SnapshotReport) => void = () => {};
  client.on("message", (topic, payload) => {
    if (topic === o.replyTopic) return rpc.received(payload);
    // Whoever may publish on the progress topics could have put anything there: only well-formed reports count.
    let value: unknown;
    try {
      value = JSON.parse(payload.toString("utf8"));
    } catch {
      return;
    }
    const report = parseSnapshotReport(value);
    if (!report) return;
    reports.set(report.id, report);
    onReport(report);
  });
  await client.subscribeAsync([o.replyTopic, progressTopic(o.moduleName, "+")], { qos: 1 });

  const started = await rpc.call("snapshot", o.filter ? [stringValue(o.model), stringValue(o.filter)] : [stringValue(o.model)]);
  if (started.error !== undefined) {
    process.stderr.write(`tera-cdc snapshot: ${started.error}\n`);
    return 1;
  }
  const id = started.return_value;
  if (typeof id !== "number" || !Number.isSafeInteger(id)) {
    process.stderr.write(`tera-cdc snapshot: the reply to snapshot holds no snapshot id (${JSON.stringify(id)?.slice(0, 80)}): is ${o.rpcTopic} answered by tera-cdc?\n`);
    return 1;
  }
  const startedAt = Date.now();
  const tty = process.stderr.isTTY === true && !o.json;
  let lastLineAt = 0;
  const show = (report: SnapshotReport) => {
    if (o.json) return;
    const line = `snapshot ${id} ${o.model}: ${progressLine(report.rows, report.estimatedRows, Date.now() - startedAt)}`;
    if (tty) process.stderr.write(`\r${line}\u001b[K`);
    else if (Date.now() - lastLineAt >= 1000 || report.status !== "running") {
      lastLineAt = Date.now();
      process.stderr.write(`${line}\n`);
    }
  };
  const final = await new Promise<SnapshotReport | Error>((resolve) => {
    const finish = (result: SnapshotReport | Error) => {
      clearInterval(poll);
      clearTimeout(deadline);
      process.off("SIGINT", onSigint);
      resolve(result);
    };
    onReport = (report) => {
      if (report.id !== id) return;
      show(report);
      if (report.status !== "running") finish(report);
    };
    // Progress reports are QoS 1 but not retained: ask now and then in case one went missing.
    const poll = setInterval(() => {
      rpc.call("snapshot_status", [intValue(id)]).then((reply) => {
        const report = reply.error === undefined ? parseSnapshotReport(reply.return_value) : null;
        if (report) onReport(report);
      }, () => {});
    }, 5000);
    const deadline = setTimeout(() => finish(new Error(`the snapshot did not end within ${o.timeoutMs / 1000} s (it goes on in tera-cdc; snapshot_status ${id} follows it)`)), o.timeoutMs);
    const onSigint = () => {
      process.stderr.write(`\ncancelling snapshot ${id}\n`);
      void rpc.call("snapshot_cancel", [intValue(id)]).catch(() => {});
    };
    process.on("SIGINT", onSigint);
    const early = reports.get(id);
    if (early) onReport(early);
  });
  if (tty) process.stderr.write("\n");
  if (final instanceof Error) {
    process.stderr.write(`tera-cdc snapshot: ${final.message}\n`);
    return 1;
  }
  const seconds = (Date.now() - startedAt) / 1000;
  const rate = Math.round(final.rows / Math.max(seconds, 0.001));
  if (o.json) {
    process.stdout.write(`${JSON.stringify({ ...final, seconds: Math.round(seconds * 1000) / 1000, rowsPerSecond: rate })}\n`);
  } else {
    const where = final.where ? ` where ${final.where}` : "";
    process.stdout.write(
      `snapshot ${final.id} of model ${final.model} (${final.table}${where}): ${final.status}, ${final.rows.toLocaleString("en-US")} rows in ${final.chunks} chunks, ${formatSeconds(seconds)} (${rate.toLocaleString("en-US")} rows/s)${final.error ? `: ${final.error}` : ""}\n`,
    );
  }
  return final.status === "done" ? 0 : 1;
}
