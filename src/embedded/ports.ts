import { createServer } from "node:net";

/** Whether nothing listens on `host:port` now (it may still be taken a moment later). */
export function isPortFree(port: number, host = "127.0.0.1"): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once("error", () => resolve(false));
    server.listen({ port, host, exclusive: true }, () => server.close(() => resolve(true)));
  });
}

/** A port the system hands out as free. */
export function anyFreePort(host = "127.0.0.1"): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen({ port: 0, host }, () => {
      const address = server.address();
      server.close(() => (typeof address === "object" && address ? resolve(address.port) : reject(new Error("no port assigned"))));
    });
  });
}

/**
 * The first free port of `candidates` (in order, duplicates and undefined skipped), else any free
 * port: embedded servers take the standard port when it is free and never fail because it is not.
 */
export async function choosePort(candidates: readonly (number | undefined)[], host = "127.0.0.1"): Promise<number> {
  const seen = new Set<number>();
  for (const port of candidates) {
    if (port === undefined || seen.has(port)) continue;
    seen.add(port);
    if (await isPortFree(port, host)) return port;
  }
  return anyFreePort(host);
}

/** The port used last time, the standard port, then `fallback` .. `fallback + count - 1`. */
export function portCandidates(saved: number | undefined, standard: number, fallback: number, count = 10): (number | undefined)[] {
  return [saved, standard, ...Array.from({ length: count }, (_, i) => fallback + i)];
}
