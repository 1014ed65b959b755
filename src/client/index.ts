/** The consuming side of tera-cdc: typed subscription, dedupe by (lsn, seq), cache invalidation. See docs/consuming.md. */
export { CHANGE_OPS, type Change, ChangeDecodeError, type ChangeOp, changeKey, decodeChanges, NO_POSITION } from "./change.js";
export { RecentKeys } from "./dedupe.js";
export {
  type BatchHandler,
  brokerProtocol,
  type ChangeHandler,
  changes,
  subscribe,
  subscribeBatches,
  type SubscribeOptions,
  type Subscription,
  type SubscriptionStats,
  topicFilters,
} from "./subscribe.js";
export { cacheKeyOf, type InvalidatableCache, type InvalidateOptions, invalidateCache, type MapLikeCache, type RedisLikeCache } from "./cache.js";
