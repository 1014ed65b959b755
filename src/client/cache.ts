/**
 * Cache invalidation driven by the change stream: `subscribe(options, invalidateCache(cache))`.
 * An update or delete of a row deletes the cache entry `<model>:<primary key>`; a truncate (or a
 * change whose key is not in the event) deletes every entry of the model.
 */
import type { Change } from "./change.js";

/** A Map, an lru-cache, or anything with delete(key) and keys(). */
export interface MapLikeCache {
  delete(key: string): unknown;
  keys(): Iterable<string>;
}

/** A node-redis (v4/v5) or ioredis client: DEL, and SCAN to clear a whole model. */
export interface RedisLikeCache {
  del(keys: string | string[]): unknown;
  scanIterator?(options: { MATCH: string; COUNT?: number }): AsyncIterable<string | string[]>;
  scanStream?(options: { match: string; count?: number }): AsyncIterable<string[]>;
}

export type InvalidatableCache = MapLikeCache | RedisLikeCache;

export interface InvalidateOptions {
  /** Models to invalidate; default every model the subscription receives. */
  readonly models?: readonly string[];
  /**
   * Primary key field(s) per model. Default OpenTera's `id_<model>` (model "device" -> "id_device").
   * Several fields make the key `<model>:<v1>:<v2>`.
   */
  readonly keys?: Readonly<Record<string, string | readonly string[]>>;
  /** Put before every cache key, e.g. "app1:" gives "app1:device:42". Default "". */
  readonly prefix?: string;
}

/** The cache key of a change's row, or null when the event does not carry the whole key. */
export function cacheKeyOf(change: Pick<Change, "model" | "object">, options: Pick<InvalidateOptions, "keys" | "prefix"> = {}): string | null {
  const configured = options.keys?.[change.model];
  const fields = configured === undefined ? [`id_${change.model}`] : typeof configured === "string" ? [configured] : configured;
  const values: string[] = [];
  for (const field of fields) {
    const value = change.object[field];
    if (value === undefined || value === null || typeof value === "object") return null;
    values.push(String(value));
  }
  return `${options.prefix ?? ""}${change.model}:${values.join(":")}`;
}

/** Returns a change handler that keeps `cache` free of stale rows. */
export function invalidateCache(cache: InvalidatableCache, options: InvalidateOptions = {}): (change: Change) => Promise<void> {
  const models = options.models ? new Set(options.models) : null;
  const store = cacheStore(cache);
  return async (change) => {
    if (models && !models.has(change.model)) return;
    if (change.op === "create") return;
    const key = change.op === "truncate" ? null : cacheKeyOf(change, options);
    if (key === null) await store.deleteByPrefix(`${options.prefix ?? ""}${change.model}:`);
    else await store.delete(key);
  };
}

interface CacheStore {
  delete(key: string): Promise<unknown>;
  deleteByPrefix(prefix: string): Promise<void>;
}

function cacheStore(cache: InvalidatableCache): CacheStore {
  const redis = cache as RedisLikeCache;
  if (typeof redis.del === "function" && (typeof redis.scanIterator === "function" || typeof redis.scanStream === "function")) {
    return {
      delete: async (key) => redis.del(key),
      async deleteByPrefix(prefix) {
        const match = `${prefix.replace(/[*?[\]\\]/g, "\\$&")}*`;
        const pages = redis.scanIterator ? redis.scanIterator({ MATCH: match, COUNT: 500 }) : redis.scanStream!({ match, count: 500 });
        for await (const page of pages) {
          // node-redis 4 yields one key at a time, node-redis 5 and ioredis a page of keys.
          const keys = typeof page === "string" ? [page] : page;
          if (keys.length > 0) await redis.del(keys);
        }
      },
    };
  }
  const map = cache as MapLikeCache;
  if (typeof map.delete === "function" && typeof map.keys === "function") {
    return {
      delete: async (key) => map.delete(key),
      async deleteByPrefix(prefix) {
        // Collect first: deleting while iterating a Map is allowed, but not every cache's keys() is.
        const doomed = [...map.keys()].filter((key) => typeof key === "string" && key.startsWith(prefix));
        for (const key of doomed) map.delete(key);
      },
    };
  }
  throw new Error("invalidateCache needs a cache with delete(key) and keys() (Map, lru-cache) or a Redis client (del + scanIterator/scanStream)");
}
