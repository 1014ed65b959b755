// Micro-benchmark: encodeDatabaseTeraEvent against the generic encodeMessage(teraEvent(...)).
// Prints events/s for both; asserts nothing (figures swing run to run: compare side by side).
// Run: npx tsx scripts/messages/bench-database-event.ts
import { DatabaseEvent, DatabaseEvent_EventType, encodeDatabaseTeraEvent, encodeMessage, teraEvent } from "../../src/messages/index.js";

const topic = "module.TeraServer.DatabaseModule.events.device";
const rows = Array.from({ length: 1000 }, (_, i) => ({
  type: DatabaseEvent_EventType.DB_UPDATE,
  objectType: "device",
  objectValue: JSON.stringify({ id_device: i, device_uuid: "9f1c2c1e-8a4b-4a57-b1f4-2f0a6c9b7e11", device_name: `Tablette ${i}`, device_enabled: true, device_onlinable: false, device_config: null, device_lastonline: "2024-04-05T12:00:00.250000+00:00" }),
}));

function measure(label: string, encode: (row: (typeof rows)[number], time: number) => Uint8Array): number {
  let bytes = 0;
  for (let i = 0; i < 20_000; i++) bytes += encode(rows[i % rows.length]!, 1712318400 + i / 1000).length; // warm-up
  const count = 200_000;
  const start = process.hrtime.bigint();
  for (let i = 0; i < count; i++) bytes += encode(rows[i % rows.length]!, 1712318400 + i / 1000).length;
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  const rate = count / seconds;
  console.log(`${label.padEnd(34)} ${Math.round(rate).toLocaleString("en-US").padStart(10)} events/s  (${bytes} bytes total)`);
  return rate;
}

const generic = measure("encodeMessage(teraEvent(...))", (row, time) =>
  encodeMessage(teraEvent({ topic, time, events: [{ $type: DatabaseEvent.$type, ...row }] })),
);
const fast = measure("encodeDatabaseTeraEvent", (row, time) => encodeDatabaseTeraEvent(topic, time, [row]));
console.log(`speed-up: ${(fast / generic).toFixed(1)}x`);
