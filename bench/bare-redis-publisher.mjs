// The raw Redis limit: a bare node-redis client, in its own process like tera-cdc, PUBLISHing
// `count` payloads of `payloadBytes` on one channel, pipelined with at most `inFlight` unanswered
// (the same bound as tera-cdc's --max-in-flight). Prints one JSON line: when the first PUBLISH left
// and when the last answer came back (epoch milliseconds).
import { performance } from "node:perf_hooks";
import { createClient } from "redis";

const { url, channel, count, payloadBytes, inFlight } = JSON.parse(process.argv[2]);
const now = () => performance.timeOrigin + performance.now();
const client = createClient({ url });
await client.connect();
const payload = Buffer.alloc(payloadBytes, 0x61);

let sent = 0;
let answered = 0;
let firstPublishAt = 0;
await new Promise((resolve, reject) => {
  const onAnswer = () => {
    answered++;
    if (answered === count) return resolve();
    pump();
  };
  const pump = () => {
    while (sent < count && sent - answered < inFlight) {
      sent++;
      client.publish(channel, payload).then(onAnswer, reject);
    }
  };
  firstPublishAt = now();
  pump();
});
const lastAnswerAt = now();
process.stdout.write(`${JSON.stringify({ firstPublishAt, lastAnswerAt })}\n`);
client.destroy();
