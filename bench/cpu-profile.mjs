// Loaded with NODE_OPTIONS=--import into a tera-cdc child by `npm run bench -- --profile DIR`
// (Node 20 refuses --cpu-prof in NODE_OPTIONS): samples the CPU from start to exit and writes a
// .cpuprofile (open it in Chrome DevTools or speedscope) into TERA_CDC_CPU_PROFILE_DIR.
import { writeFileSync } from "node:fs";
import { Session } from "node:inspector";
import { join } from "node:path";

const dir = process.env.TERA_CDC_CPU_PROFILE_DIR;
const name = process.env.TERA_CDC_CPU_PROFILE_NAME ?? `tera-cdc-${process.pid}`;
if (dir) {
  const session = new Session();
  session.connect();
  session.post("Profiler.enable");
  session.post("Profiler.setSamplingInterval", { interval: 200 });
  session.post("Profiler.start");
  process.once("exit", () => {
    // The in-process inspector session answers synchronously, so this completes before exit.
    session.post("Profiler.stop", (error, result) => {
      if (!error) writeFileSync(join(dir, `${name}.cpuprofile`), JSON.stringify(result.profile));
    });
  });
}
