/**
 * Where a Docker engine exists, the harness runs PostgreSQL and Mosquitto in containers through
 * testcontainers; elsewhere (this project's CI machines have no engine) it falls back to local
 * processes. `TERA_CDC_TEST_CONTAINERS=0` forces local processes, `=1` requires containers.
 *
 * A container's main process is a small loop that restarts the server unless a pause file
 * exists, so that tests can stop and start the server (outages, restarts) while the container,
 * and so its mapped port, stays the same.
 */
import type { StartedTestContainer } from "testcontainers";

let runtime: Promise<boolean> | undefined;

export function useContainers(): Promise<boolean> {
  const wanted = process.env.TERA_CDC_TEST_CONTAINERS;
  if (wanted === "0") return Promise.resolve(false);
  runtime ??= (async () => {
    try {
      const { getContainerRuntimeClient } = await import("testcontainers");
      await getContainerRuntimeClient();
      return true;
    } catch (error) {
      if (wanted === "1") throw new Error(`TERA_CDC_TEST_CONTAINERS=1 but no container runtime: ${(error as Error).message}`);
      return false;
    }
  })();
  return runtime;
}

export interface ServerContainer {
  readonly host: string;
  readonly port: number;
  /** Stops the server process inside the container (the container and its port stay). */
  stopServer(): Promise<void>;
  /** Lets the loop start the server again. */
  startServer(): Promise<void>;
  close(): Promise<void>;
}

const PAUSE_FILE = "/tmp/tera-cdc-paused";

export async function startServerContainer(options: {
  image: string;
  port: number;
  /** Shell command that runs the server in the foreground. */
  serve: string;
  /** Shell command that stops it (fast shutdown). */
  stop: string;
  env?: Record<string, string>;
  files?: { content: string; target: string }[];
  /** Log line that says the server is ready; the mapped port accepting connections otherwise. */
  readyLog?: RegExp;
}): Promise<ServerContainer> {
  const { GenericContainer, Wait } = await import("testcontainers");
  const loop = `while true; do if [ ! -f ${PAUSE_FILE} ]; then ${options.serve}; fi; sleep 0.2; done`;
  const container: StartedTestContainer = await new GenericContainer(options.image)
    .withEnvironment(options.env ?? {})
    .withCopyContentToContainer(options.files ?? [])
    .withEntrypoint(["sh", "-c"])
    .withCommand([loop])
    .withExposedPorts(options.port)
    .withWaitStrategy(options.readyLog ? Wait.forLogMessage(options.readyLog) : Wait.forListeningPorts())
    .start();
  return {
    host: container.getHost(),
    port: container.getMappedPort(options.port),
    async stopServer() {
      await container.exec(["sh", "-c", `touch ${PAUSE_FILE} && ${options.stop}`]);
    },
    async startServer() {
      await container.exec(["rm", "-f", PAUSE_FILE]);
    },
    async close() {
      await container.stop();
    },
  };
}
