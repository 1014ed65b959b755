/**
 * npm run proto        -> regenerate src/messages/generated from proto/ (buf + ts-proto, offline)
 * npm run proto:check  -> generate into a temporary folder and fail if it differs from the
 *                         committed src/messages/generated (CI runs this)
 * The folder's README.md is hand-written and kept; every other file there is generated.
 */
import { execFileSync } from "node:child_process";
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const generatedDir = join(root, "src", "messages", "generated");
const KEEP = "README.md";

function listFiles(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile())
    .map((entry) => relative(dir, join(entry.parentPath, entry.name)))
    .filter((path) => path !== KEEP)
    .sort();
}

function generateInto(outputBase: string): string {
  // buf writes each plugin's `out` (src/messages/generated) under --output.
  execFileSync(join(root, "node_modules", ".bin", "buf"), ["generate", "--output", outputBase], {
    cwd: root,
    stdio: ["ignore", "inherit", "inherit"],
  });
  return join(outputBase, "src", "messages", "generated");
}

const check = process.argv.includes("--check");
const temp = mkdtempSync(join(tmpdir(), "tera-proto-"));
try {
  const fresh = generateInto(temp);
  const freshFiles = listFiles(fresh);
  if (check) {
    const committedFiles = listFiles(generatedDir);
    const differing = [...new Set([...freshFiles, ...committedFiles])].filter((path) => {
      const a = join(fresh, path);
      const b = join(generatedDir, path);
      return !existsSync(a) || !existsSync(b) || !readFileSync(a).equals(readFileSync(b));
    });
    if (differing.length > 0) {
      console.error(
        `proto:check: src/messages/generated is out of date with proto/ (${differing.join(", ")}); run npm run proto and commit`,
      );
      process.exit(1);
    }
    console.log(`proto:check: src/messages/generated matches proto/ (${freshFiles.length} files)`);
  } else {
    for (const path of listFiles(generatedDir)) rmSync(join(generatedDir, path));
    cpSync(fresh, generatedDir, { recursive: true });
    console.log(`proto: generated ${freshFiles.length} files in src/messages/generated`);
  }
} finally {
  rmSync(temp, { recursive: true, force: true });
}
