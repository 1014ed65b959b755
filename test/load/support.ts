import { readFileSync } from "node:fs";
import mqtt from "mqtt";
import { decodeTeraEvent, unpackAny } from "../../src/messages/index.js";

/** Resident memory (VmRSS) of a process in bytes, from /proc/<pid>/status. */
export function residentBytes(pid: number): number {
  const match = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  if (!match) throw new Error(`no VmRSS for process ${pid}`);
  return Number(match[1]) * 1024;
}

/** Samples a process' VmRSS every `everyMs` until stopped (or the process is gone). */
export function sampleResidentMemory(pid: number, everyMs = 200): { readonly samples: number[]; max(): number; stop(): void } {
  const samples: number[] = [];
  const take = () => {
    try {
      samples.push(residentBytes(pid));
    } catch {
      clearInterval(timer);
    }
  };
  const timer = setInterval(take, everyMs);
  take();
  return { samples, max: () => Math.max(...samples), stop: () => clearInterval(timer) };
}

export const MB = 1024 * 1024;

/** One DatabaseEvent's object, decoded from a TeraEvent payload (for sampled checks). */
export function decodeObject(payload: Buffer): Record<string, unknown> {
  const decoded = decodeTeraEvent(payload);
  if (!decoded.ok) throw new Error(`undecodable payload: ${decoded.error.message}`);
  const unpacked = unpackAny(decoded.message.events[0]!);
  if (unpacked.type !== "DatabaseEvent") throw new Error(`unexpected ${unpacked.type}`);
  return JSON.parse(unpacked.message.objectValue) as Record<string, unknown>;
}

/**
 * A lean subscriber for streams too large to keep: per message it keeps only the (lsn, seq)
 * checks and hands the payload to `inspect` when asked; memory stays small at a million messages.
 */
export async function startCountingConsumer(
  url: string,
  topic: string,
  inspect: (seq: number, payload: Buffer, properties: Record<string, string>) => void = () => {},
): Promise<{ count(): number; outOfOrder(): number; lastSeq(): number; lsns(): Set<string>; close(): Promise<void> }> {
  const client = await mqtt.connectAsync(url, { protocolVersion: 5, clean: true, reconnectPeriod: 200 });
  let count = 0;
  let outOfOrder = 0;
  let lastSeq = -1;
  let lastLsn = "";
  const lsns = new Set<string>();
  client.on("message", (_topic, payload, packet) => {
    const properties = (packet.properties?.userProperties ?? {}) as Record<string, string>;
    const seq = Number(properties.seq);
    const lsn = properties.lsn ?? "";
    lsns.add(lsn);
    // Within one transaction seq counts 0, 1, 2, ...; a new transaction starts again at 0.
    const expected = lsn === lastLsn ? lastSeq + 1 : 0;
    if (seq !== expected) outOfOrder++;
    lastSeq = seq;
    lastLsn = lsn;
    count++;
    inspect(seq, payload, properties);
  });
  await client.subscribeAsync(topic, { qos: 1 });
  return {
    count: () => count,
    outOfOrder: () => outOfOrder,
    lastSeq: () => lastSeq,
    lsns: () => lsns,
    close: () => client.endAsync(true),
  };
}
