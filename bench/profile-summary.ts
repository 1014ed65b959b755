/**
 * `npx tsx bench/profile-summary.ts FILE.cpuprofile [top]`: self time by function and by file of a
 * CPU profile written by `npm run bench -- --profile DIR`, idle time left out of the percentages.
 */
import { readFileSync } from "node:fs";

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

const [file, topArg] = process.argv.slice(2);
if (!file) {
  process.stderr.write("usage: tsx bench/profile-summary.ts FILE.cpuprofile [top]\n");
  process.exit(2);
}
const top = Number(topArg ?? 25);
const profile = JSON.parse(readFileSync(file, "utf8")) as Profile;
const byId = new Map(profile.nodes.map((n) => [n.id, n]));
const selfMicros = new Map<number, number>();
profile.samples.forEach((id, i) => selfMicros.set(id, (selfMicros.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)));
const shortUrl = (url: string) => url.replace(/^file:\/\/.*?\/node_modules\//, "").replace(/^file:\/\/.*?\/(src|bench|test)\//, "$1/") || "(native)";
const byFunction = new Map<string, number>();
const byFile = new Map<string, number>();
let busy = 0;
let idle = 0;
for (const [id, micros] of selfMicros) {
  const frame = byId.get(id)!.callFrame;
  if (frame.functionName === "(idle)" || frame.functionName === "(program)") {
    idle += micros;
    continue;
  }
  busy += micros;
  const key = `${frame.functionName || "(anonymous)"} ${shortUrl(frame.url)}:${frame.lineNumber + 1}`;
  byFunction.set(key, (byFunction.get(key) ?? 0) + micros);
  const fileKey = shortUrl(frame.url).replace(/\/[^/]*$/, "/");
  byFile.set(fileKey, (byFile.get(fileKey) ?? 0) + micros);
}
const print = (title: string, map: Map<string, number>) => {
  process.stdout.write(`\n${title}\n`);
  for (const [key, micros] of [...map].sort((a, b) => b[1] - a[1]).slice(0, top)) {
    process.stdout.write(`${((micros / busy) * 100).toFixed(1).padStart(5)}%  ${(micros / 1000).toFixed(0).padStart(6)} ms  ${key}\n`);
  }
};
process.stdout.write(`busy ${(busy / 1000).toFixed(0)} ms, idle/program ${(idle / 1000).toFixed(0)} ms\n`);
print("self time by function", byFunction);
print("self time by folder", byFile);
