// The gateway benchmark's clients, in a process of their own: opens `count` WebSockets to `url`
// (the gateway's /ws with a token each, or the bare broadcaster), subscribes each to `model`, and
// records for every delivered row (a binary frame after its event meta frame) the time from its
// COMMIT (the meta's commitTime, PostgreSQL's commit timestamp) to its arrival here, in a
// histogram of 0.1 ms buckets. Commands on stdin, one per line, each answered by one JSON line on
// stdout: "reset" (zero the figures), "report" (deliveries, first and last arrival, p50, p99, max).
import { createInterface } from "node:readline";
import { performance } from "node:perf_hooks";
import { randomBytes } from "node:crypto";
import { connect } from "node:net";

const { url, model, count, tokens, bare } = JSON.parse(process.argv[2]);
const now = () => performance.timeOrigin + performance.now();
const BUCKETS = 300_000; // 0.1 ms each: up to 30 s, the last one holds anything later
let histogram = new Uint32Array(BUCKETS);
let deliveries = 0;
let metaWithoutCommitTime = 0;
let firstAt = 0;
let lastAt = 0;
let closed = 0;
let ready = 0;

const EVENT_PREFIX = Buffer.from('{"type":"event"');
const COMMIT_TIME = '"commitTime":"';
const QUOTE = 0x22;

// Every client gets the same events: the last commit time text parsed is usually the next one.
let cachedIso = "";
let cachedMs = 0;
function commitMs(iso) {
  if (iso !== cachedIso) {
    // 2024-05-01T12:00:00.123456+00:00 (microseconds; Date.parse keeps milliseconds only)
    const m = /^(.{19})(?:\.(\d+))?(.*)$/.exec(iso);
    cachedMs = m ? Date.parse(`${m[1]}${m[3] || "Z"}`) + (m[2] ? Number(`0.${m[2]}`) * 1000 : 0) : Number.NaN;
    cachedIso = iso;
  }
  return cachedMs;
}

const { hostname, port, pathname } = new URL(url);

/** A masked client frame (RFC 6455 5.3: every client frame is masked; a zero mask is allowed). */
function clientFrame(opcode, payload) {
  if (payload.length > 125) throw new Error("client frames here are short");
  return Buffer.concat([Buffer.from([0x80 | opcode, 0x80 | payload.length, 0, 0, 0, 0]), payload]);
}

/**
 * One client on a bare TCP socket with its own frame parser (RFC 6455 section 5.2), not ws's: with
 * thousands of sockets in one process, a per-frame message event made this process the bottleneck
 * of what it measures; here a TCP chunk holding many frames is scanned in one go.
 */
function open(index) {
  return new Promise((resolve, reject) => {
    const token = tokens[index % tokens.length];
    const socket = connect({ host: hostname, port: Number(port) });
    socket.setNoDelay(true);
    const key = randomBytes(16).toString("base64");
    const protocol = bare ? "" : `Sec-WebSocket-Protocol: tera-cdc.v1, bearer.${token}\r\n`;
    socket.write(`GET ${pathname} HTTP/1.1\r\nHost: ${hostname}:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n${protocol}\r\n`);
    let upgraded = false;
    let buffer = Buffer.alloc(0);
    let pendingCommit = Number.NaN;
    let subscribed = false;
    const ready_ = () => {
      ready++;
      resolve();
    };
    const onText = (payload) => {
      if (payload.indexOf(EVENT_PREFIX) === 0) {
        // Not JSON.parse: this process must not be the bottleneck it measures.
        const at = payload.indexOf(COMMIT_TIME);
        if (at < 0) metaWithoutCommitTime++;
        else pendingCommit = commitMs(payload.latin1Slice(at + COMMIT_TIME.length, payload.indexOf(QUOTE, at + COMMIT_TIME.length)));
        return;
      }
      const frame = JSON.parse(payload.toString("utf8"));
      if (frame.type === "hello") socket.write(clientFrame(1, Buffer.from(JSON.stringify({ type: "subscribe", models: [model] }))));
      else if (frame.type === "subscribed" && !subscribed) {
        subscribed = true;
        ready_();
      } else if (frame.type === "error") reject(new Error(`client ${index}: ${frame.message}`));
    };
    socket.on("data", (chunk) => {
      buffer = buffer.length === 0 ? chunk : Buffer.concat([buffer, chunk]);
      if (!upgraded) {
        const end = buffer.indexOf("\r\n\r\n");
        if (end < 0) return;
        const head = buffer.latin1Slice(0, end);
        if (!head.startsWith("HTTP/1.1 101")) return reject(new Error(`client ${index}: ${head.split("\r\n")[0]}`));
        upgraded = true;
        buffer = buffer.subarray(end + 4);
        if (bare) ready_();
      }
      let offset = 0;
      const at = now();
      while (buffer.length - offset >= 2) {
        const opcode = buffer[offset] & 0x0f;
        let length = buffer[offset + 1] & 0x7f;
        let header = 2;
        if (length === 126) {
          if (buffer.length - offset < 4) break;
          length = buffer.readUInt16BE(offset + 2);
          header = 4;
        } else if (length === 127) {
          if (buffer.length - offset < 10) break;
          length = Number(buffer.readBigUInt64BE(offset + 2));
          header = 10;
        }
        if (buffer.length - offset < header + length) break;
        const payload = buffer.subarray(offset + header, offset + header + length);
        offset += header + length;
        if (opcode === 0x2) {
          deliveries++;
          if (firstAt === 0) firstAt = at;
          lastAt = at;
          const ms = at - pendingCommit;
          if (Number.isFinite(ms)) histogram[Math.min(BUCKETS - 1, Math.max(0, Math.round(ms * 10)))]++;
          pendingCommit = Number.NaN;
        } else if (opcode === 0x1) onText(payload);
        else if (opcode === 0x9) socket.write(clientFrame(0xa, payload));
        else if (opcode === 0x8) socket.end();
      }
      buffer = offset === buffer.length ? Buffer.alloc(0) : Buffer.from(buffer.subarray(offset));
    });
    socket.on("error", (error) => reject(error));
    socket.on("close", () => closed++);
  });
}

function percentile(p) {
  const total = histogram.reduce((a, b) => a + b, 0);
  if (total === 0) return Number.NaN;
  const rank = Math.ceil((p / 100) * total);
  let seen = 0;
  for (let i = 0; i < BUCKETS; i++) {
    seen += histogram[i];
    if (seen >= rank) return i / 10;
  }
  return Number.NaN;
}

function maximum() {
  for (let i = BUCKETS - 1; i >= 0; i--) if (histogram[i] > 0) return i / 10;
  return Number.NaN;
}

// Opened 100 at a time: a burst of thousands of handshakes would time out on a busy machine.
for (let i = 0; i < count; i += 100) {
  await Promise.all(Array.from({ length: Math.min(100, count - i) }, (_, k) => open(i + k)));
}
process.stdout.write(`${JSON.stringify({ ready })}\n`);

createInterface({ input: process.stdin }).on("line", (line) => {
  if (line === "reset") {
    histogram = new Uint32Array(BUCKETS);
    deliveries = 0;
    firstAt = 0;
    lastAt = 0;
    process.stdout.write(`${JSON.stringify({ ok: true })}\n`);
  } else if (line === "report") {
    process.stdout.write(`${JSON.stringify({ deliveries, firstAt, lastAt, p50: percentile(50), p99: percentile(99), max: maximum(), closed, metaWithoutCommitTime })}\n`);
  } else if (line === "exit") {
    process.exit(0);
  }
});
