import { type ChildProcess, spawn, type SpawnOptions } from "node:child_process";

/** A server a test starts on a port of its own, and may stop and start again on it (an outage). */
export interface RestartableServer {
  readonly url: string;
  readonly port: number;
  stop(): Promise<void>;
  start(): Promise<void>;
  close(): Promise<void>;
}

/** Every child a harness started, killed when the test process exits whatever happens. */
const children = new Set<ChildProcess>();
process.once("exit", () => {
  for (const child of children) child.kill("SIGKILL");
});

/** Children whose stdio streams have closed too: everything they wrote has been read. */
const closed = new WeakSet<ChildProcess>();

export function track(child: ChildProcess): ChildProcess {
  children.add(child);
  child.once("exit", () => children.delete(child));
  child.once("close", () => closed.add(child));
  return child;
}

export function spawnTracked(command: string, args: string[], options: SpawnOptions): ChildProcess {
  return track(spawn(command, args, options));
}

/**
 * The exit code, once the process has exited and its output streams are drained: `exit` can come
 * before the last bytes of stderr, and a test reading the output then would miss them.
 */
export function exited(child: ChildProcess, timeoutMs = 15_000): Promise<number | null> {
  if (closed.has(child)) return Promise.resolve(child.exitCode);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`process ${child.pid} did not exit within ${timeoutMs} ms`)), timeoutMs);
    child.once("close", () => {
      clearTimeout(timer);
      resolve(child.exitCode);
    });
  });
}
