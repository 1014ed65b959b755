// The raw MQTT limit: a bare mqtt.js client, in its own process like tera-cdc, publishing `count`
// payloads of `payloadBytes` at `qos` (1 or 2), pipelined with at most `inFlight` unacknowledged (the same
// bound as tera-cdc's --max-in-flight default). Prints one JSON line: when the first publish left
// and when the last acknowledgement came back (epoch milliseconds), and the CPU seconds the
// process used in between (its rate per CPU-second is less at the mercy of a busy machine).
import { performance } from "node:perf_hooks";
import mqtt from "mqtt";

const { url, topic, count, payloadBytes, qos, inFlight, userProperties } = JSON.parse(process.argv[2]);
const now = () => performance.timeOrigin + performance.now();
const client = await mqtt.connectAsync(url, { protocolVersion: 5, clean: true, reconnectPeriod: 0 });
const payload = Buffer.alloc(payloadBytes, 0x61);
// With userProperties, every message carries them (and a content type) as tera-cdc's do.
const options = userProperties ? { qos, properties: { contentType: "application/x-protobuf", userProperties } } : { qos };

let sent = 0;
let acked = 0;
let outstanding = 0;
let firstPublishAt = 0;
let cpuBefore = process.cpuUsage();
await new Promise((resolve, reject) => {
  const onAck = (error) => {
    if (error) return reject(error);
    acked++;
    outstanding--;
    if (acked === count) return resolve();
    pump();
  };
  const pump = () => {
    while (sent < count && outstanding < inFlight) {
      sent++;
      outstanding++;
      client.publish(topic, payload, options, onAck);
    }
  };
  firstPublishAt = now();
  cpuBefore = process.cpuUsage();
  pump();
});
const lastAckAt = now();
const cpu = process.cpuUsage(cpuBefore);
process.stdout.write(`${JSON.stringify({ firstPublishAt, lastAckAt, cpuSeconds: (cpu.user + cpu.system) / 1e6 })}\n`);
await client.endAsync();
