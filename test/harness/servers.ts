import { afterAll, beforeAll } from "vitest";
import { startAedes, startBroker, type Broker, type BrokerOptions } from "./broker.js";
import { type NatsCluster, startNatsCluster } from "./nats.js";
import { type PostgresOptions, type PostgresServer, startPostgres } from "./postgres.js";

/**
 * Servers shared by the tests of a file (or of the describe block that calls this): started
 * together before the first test, closed after the last (after the file's own afterAll hooks,
 * which run first). What a test reads is a handle that forwards to the started server, so a test
 * uses it like the server itself (`pg.url`, `broker.stop()`); read before the start it throws.
 * When one server fails to start, those that did are closed.
 */
function useServers<T extends readonly { close(): Promise<unknown> }[]>(start: { [K in keyof T]: () => Promise<T[K]> }, what: string): T {
  let started: T | undefined;
  beforeAll(async () => {
    const outcomes = await Promise.allSettled(start.map((one) => one()));
    const failed = outcomes.find((o): o is PromiseRejectedResult => o.status === "rejected");
    if (failed) {
      await Promise.all(outcomes.map((o) => (o.status === "fulfilled" ? o.value.close().catch(() => {}) : undefined)));
      throw failed.reason;
    }
    started = outcomes.map((o) => (o as PromiseFulfilledResult<T[number]>).value) as unknown as T;
  }, 120_000);
  afterAll(async () => {
    await Promise.all((started ?? []).map((server) => server.close()));
  });
  return start.map((_, index) => handle(() => started?.[index], what)) as unknown as T;
}

/** An object standing for the server `current()` returns once started: property reads go to it, methods run on it. */
function handle<S extends object>(current: () => S | undefined, what: string): S {
  const target = () => {
    const server = current();
    if (!server) throw new Error(`${what} used before beforeAll started it (use it inside a test or hook)`);
    return server;
  };
  return new Proxy({} as S, {
    get(_, key) {
      const server = target();
      const value: unknown = Reflect.get(server, key);
      return typeof value === "function" ? value.bind(server) : value;
    },
    has: (_, key) => Reflect.has(target(), key),
  });
}

/** A PostgreSQL cluster (logical WAL) and a Mosquitto broker for the tests of this file or describe block. */
export function useClusterAndBroker(options: { postgres?: PostgresOptions; broker?: BrokerOptions } = {}): readonly [PostgresServer, Broker] {
  return useServers<[PostgresServer, Broker]>([() => startPostgres(options.postgres), () => startBroker(options.broker)], "the test's PostgreSQL cluster or broker");
}

/** A PostgreSQL cluster and an in-process aedes broker (MQTT 3.1.1 only, like `npm start`'s fallback). */
export function useClusterAndAedes(): readonly [PostgresServer, Awaited<ReturnType<typeof startAedes>>] {
  return useServers<[PostgresServer, Awaited<ReturnType<typeof startAedes>>]>([() => startPostgres(), () => startAedes()], "the test's PostgreSQL cluster or aedes broker");
}

/** A PostgreSQL cluster and a NATS cluster of `size` nodes (JetStream + MQTT 3.1.1 on each, see nats.ts). */
export function useClusterAndNats(size = 3): readonly [PostgresServer, NatsCluster] {
  return useServers<[PostgresServer, NatsCluster]>([() => startPostgres(), () => startNatsCluster(size)], "the test's PostgreSQL cluster or NATS cluster");
}
