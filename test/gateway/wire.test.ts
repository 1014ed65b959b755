import { once } from "node:events";
import { afterEach, expect, it } from "vitest";
import { WebSocket, WebSocketServer } from "ws";
import { checkWireSupport, frameBinary, frameText, joinFrames, writeFrames } from "../../src/gateway/wire.js";

/**
 * Contract test of src/gateway/wire.ts, the one file that writes pre-framed bytes past ws's send():
 * a real ws client (its own parser, the oracle) must receive exactly the messages written, in
 * order, also when ws's sender is busy compressing and the frames must queue behind it.
 */
const servers: WebSocketServer[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) {
    for (const c of s.clients) c.terminate();
    await new Promise((r) => s.close(r));
  }
});

async function pair(perMessageDeflate: boolean): Promise<{ server: WebSocket; received: { data: string; binary: boolean }[] }> {
  const wss = new WebSocketServer({ port: 0, host: "127.0.0.1", perMessageDeflate });
  servers.push(wss);
  await once(wss, "listening");
  const port = (wss.address() as { port: number }).port;
  const connected = once(wss, "connection");
  const client = new WebSocket(`ws://127.0.0.1:${port}`, { perMessageDeflate });
  const received: { data: string; binary: boolean }[] = [];
  client.on("message", (data, binary) => received.push({ data: binary ? Buffer.from(data as Buffer).toString("hex") : data.toString(), binary }));
  await once(client, "open");
  const [server] = (await connected) as [WebSocket];
  return { server, received };
}

it("passes its start-up check on the installed ws", () => {
  expect(() => checkWireSupport()).not.toThrow();
});

it("frames as RFC 6455 says for the three payload length forms", () => {
  expect([...frameText("hi").bytes]).toEqual([0x81, 2, 0x68, 0x69]);
  const medium = frameBinary(new Uint8Array(300)).bytes;
  expect([...medium.subarray(0, 4)]).toEqual([0x82, 126, 300 >> 8, 300 & 0xff]);
  expect(medium.length).toBe(304);
  const large = frameBinary(new Uint8Array(70_000)).bytes;
  expect([...large.subarray(0, 2)]).toEqual([0x82, 127]);
  expect(large.readBigUInt64BE(2)).toBe(70_000n);
  expect(large.length).toBe(70_010);
});

it("delivers pre-framed text and binary messages to a real ws client, in order, shared between clients", async () => {
  const a = await pair(false);
  const b = await pair(false);
  const frames = [frameText('{"type":"event","n":1}'), frameBinary(Uint8Array.from([1, 2, 3])), frameText("x".repeat(200)), frameBinary(new Uint8Array(70_000).fill(7))];
  writeFrames(a.server, frames.slice(0, 1));
  writeFrames(a.server, frames.slice(1));
  // Joined into one buffer (one write), as the gateway sends an event's two frames.
  writeFrames(b.server, [joinFrames(frames)]);
  const expected = [
    { data: '{"type":"event","n":1}', binary: false },
    { data: "010203", binary: true },
    { data: "x".repeat(200), binary: false },
    { data: "07".repeat(70_000), binary: true },
  ];
  for (const { received } of [a, b]) {
    await expect.poll(() => received.length, { timeout: 10_000 }).toBe(4);
    expect(received).toEqual(expected);
  }
});

it("keeps the order behind a message ws is still compressing (falls back to send)", async () => {
  const { server, received } = await pair(true);
  // A compressed send leaves ws's sender busy (deflating) when it returns.
  server.send("z".repeat(100_000), { compress: true });
  writeFrames(server, [joinFrames([frameText("after"), frameBinary(Uint8Array.from([9]))])]);
  await expect.poll(() => received.length, { timeout: 10_000 }).toBe(3);
  expect(received.map((m) => (m.data.length > 20 ? `${m.data.length} bytes` : m.data))).toEqual(["100000 bytes", "after", "09"]);
});
