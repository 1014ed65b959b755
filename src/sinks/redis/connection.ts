import { readFileSync } from "node:fs";
import type { RedisClientOptions } from "redis";
import { ConfigError } from "../../errors.js";

/** How tera-cdc reaches Redis, whether it publishes (the sink) or subscribes (`tail`). */
export interface RedisConnectionOptions {
  /** `redis://[user:password@]host:port[/db]` or `rediss://` (TLS). */
  readonly url: string;
  /** CA certificate (PEM) that signed the server's certificate, for rediss:// with a private CA. */
  readonly ca?: Buffer;
  /** Delay before reconnect attempt `retries` (0-based). */
  readonly reconnectDelayMs: (retries: number) => number;
}

/**
 * node-redis client options for one connection: TLS when the URL says rediss:// (trusting `ca`
 * when given, the system's CAs otherwise), a connect timeout, and the caller's reconnect pacing.
 * One place, so the sink and `tail` cannot disagree on what a rediss:// URL and --redis-ca mean.
 */
export function redisClientOptions(options: RedisConnectionOptions): RedisClientOptions {
  const tls = new URL(options.url).protocol === "rediss:";
  return {
    url: options.url,
    socket: {
      connectTimeout: 10_000,
      ...(tls ? { tls: true as const, ...(options.ca ? { ca: options.ca } : {}) } : {}),
      reconnectStrategy: options.reconnectDelayMs,
    },
  };
}

/**
 * The `redis-ca` setting's certificate (file already validated), refused unless the Redis URL is
 * rediss://: a CA given for a plain connection would be silently unused.
 */
export function redisCa(values: { readonly "redis-url"?: string | undefined; readonly "redis-ca"?: string | undefined }): Buffer | undefined {
  const file = values["redis-ca"];
  if (file === undefined) return undefined;
  const url = values["redis-url"];
  if (url === undefined || new URL(url).protocol !== "rediss:") {
    throw new ConfigError("setting redis-ca is for TLS connections to Redis: give a rediss:// --redis-url, or drop --redis-ca");
  }
  return readFileSync(file);
}
