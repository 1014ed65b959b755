// The gateway benchmark's limit: a bare `ws` broadcast in its own process. It subscribes to the
// same broker topic as the gateway and sends every message to every connected client as the
// gateway's two frames (an event meta text frame built from the user properties, then the payload
// as a binary frame) with plain `ws.send`: no token, no rules, no ring, no resume. Prints
// {"port":N} once listening and subscribed.
import mqtt from "mqtt";
import { WebSocketServer } from "ws";

const { mqttUrl, topic } = JSON.parse(process.argv[2]);
const wss = new WebSocketServer({ host: "127.0.0.1", port: 0 });
await new Promise((resolve) => wss.once("listening", resolve));
const client = await mqtt.connectAsync(mqttUrl, { protocolVersion: 5, clean: true });
client.on("message", (_topic, payload, packet) => {
  const p = packet.properties?.userProperties ?? {};
  const meta = JSON.stringify({ type: "event", lsn: p.lsn, seq: Number(p.seq ?? 0), model: topic.split("/").pop(), op: p.op, commitTime: p["commit-time"], table: p.table });
  for (const ws of wss.clients) {
    ws.send(meta);
    ws.send(payload);
  }
});
await client.subscribeAsync(topic, { qos: 1 });
process.stdout.write(`${JSON.stringify({ port: wss.address().port })}\n`);
