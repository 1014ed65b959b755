import { spawnSync } from "node:child_process";

const INSTALL_HINT = "run `apt-get install -y protobuf-compiler python3-protobuf` (CI installs them)";

/**
 * A python3 that can import google.protobuf, with protoc on PATH. Debian's python3-protobuf goes to
 * /usr/bin/python3, which a pyenv or venv python3 earlier on PATH does not see, so both are tried.
 * Throws (the test fails, it is not skipped) when either is missing.
 */
export function findProtobufPython(): string {
  const candidates = [process.env.PROTOBUF_PYTHON, "/usr/bin/python3", "python3"].filter((c): c is string => !!c);
  const python = candidates.find((candidate) => spawnSync(candidate, ["-c", "import google.protobuf"]).status === 0);
  if (python === undefined) {
    throw new Error(`no python3 with google.protobuf found (tried ${candidates.join(", ")}): ${INSTALL_HINT}`);
  }
  if (spawnSync("protoc", ["--version"]).status !== 0) {
    throw new Error(`protoc not found on PATH: ${INSTALL_HINT}`);
  }
  return python;
}
