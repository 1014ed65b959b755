import { execFileSync } from "node:child_process";
import { join } from "node:path";

/**
 * Tests run the real command, which runs the compiled dist/: build it from the current sources
 * first, so no test ever exercises stale JavaScript.
 */
export default function buildDist(): void {
  const root = join(import.meta.dirname, "..");
  execFileSync(process.execPath, [join(root, "node_modules", "typescript", "bin", "tsc"), "-p", join(root, "tsconfig.build.json")], {
    cwd: root,
    stdio: "inherit",
  });
}
