import mqtt from "mqtt";
import { afterAll, beforeAll, expect, it } from "vitest";
import { decodeRPCMessage } from "../../src/messages/index.js";
import { type Broker, startBroker } from "../harness/broker.js";
import { runCli } from "../harness/cdc.js";
import { exited } from "../harness/processes.js";

/**
 * `tera-cdc snapshot` reads its replies and progress reports from the broker: anything published
 * there is hostile until checked. Here a stand-in for tera-cdc's RPC listener answers the request
 * after publishing malformed replies and reports on the same topics (JSON null, arrays, wrong
 * types, missing fields); the command must ignore them, not crash, and end on the well-formed
 * final report it then gets.
 */
let broker: Broker;
let responder: mqtt.MqttClient;

beforeAll(async () => {
  broker = await startBroker();
  responder = await mqtt.connectAsync(broker.url, { protocolVersion: 5 });
}, 60_000);

afterAll(async () => {
  await responder?.endAsync();
  await broker?.close();
});

const SNAPSHOT_ID = 7;
const report = (fields: Record<string, unknown>) =>
  JSON.stringify({ id: SNAPSHOT_ID, model: "device", table: "public.t_devices", where: null, status: "running", rows: 1, estimatedRows: 3, chunks: 1, startedAt: "2026-01-01T00:00:00Z", finishedAt: null, error: null, ...fields });

it("ignores malformed replies and progress reports, and ends on the well-formed final report", async () => {
  const progress = `module/tera-cdc/snapshots/${SNAPSHOT_ID}`;
  const requests: string[] = [];
  responder.on("message", (_topic, payload) => {
    const decoded = decodeRPCMessage(payload);
    if (!decoded.ok) return;
    const request = decoded.message;
    requests.push(request.method);
    const replyTo = request.replyTo;
    const id = Number(request.id);
    const send = (topic: string, text: string) => responder.publish(topic, text, { qos: 1 });
    if (request.method === "snapshot") {
      for (const bad of ["null", "[]", '"text"', "42", `{"id":"${id}","return_value":${SNAPSHOT_ID}}`, `{"id":${id},"error":17}`]) send(replyTo, bad);
      send(replyTo, JSON.stringify({ id, return_value: SNAPSHOT_ID }));
      for (const bad of ["null", "[]", `{"id":${SNAPSHOT_ID}}`, report({ status: 5 }), report({ rows: "1" }), report({ status: "done", model: null }), report({ status: "done", rows: -1 })]) send(progress, bad);
      send(progress, report({ status: "done", rows: 3, chunks: 2, finishedAt: "2026-01-01T00:00:01Z" }));
    } else if (request.method === "snapshot_status") {
      send(replyTo, JSON.stringify({ id, return_value: null }));
    }
  });
  await responder.subscribeAsync("module/tera-cdc/rpc", { qos: 1 });
  const { child, output } = runCli(["snapshot", "device", "--mqtt-url", broker.url, "--json", "--timeout", "60"]);
  const code = await exited(child, 90_000);
  expect(output().stderr).not.toMatch(/TypeError|at .*\.js:\d+/);
  expect(code).toBe(0);
  expect(requests[0]).toBe("snapshot");
  const final = JSON.parse(output().stdout.trim()) as { id: number; status: string; rows: number };
  expect(final).toMatchObject({ id: SNAPSHOT_ID, status: "done", rows: 3 });
}, 120_000);
