#!/usr/bin/env -S node --max-old-space-size=128
// The package's command. It runs the compiled JavaScript in dist/, built from src/ by
// `npm install` (the prepare script), `npm run build` and every test run.
// The heap cap keeps resident memory flat under load: the live data of a stream is small, but
// without a cap V8 lets its heap grow by 100+ MB before collecting (docs/performance.md).
import { existsSync } from "node:fs";

const main = new URL("../dist/cli/main.js", import.meta.url);
if (!existsSync(main)) {
  process.stderr.write("tera-cdc: dist/ is missing: run npm run build (npm install runs it too)\n");
  process.exit(1);
}
await import(main.href);
