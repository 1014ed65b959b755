/** The consuming side of tera-cdc: typed subscription, dedupe by (lsn, seq), cache invalidation. See docs/consuming.md. */
export { CHANGE_OPS, type Change, ChangeDecodeError, type ChangeOp, changeKey, decodeChanges, NO_POSITION } from "./change.js";
export { contentDigest, DEFAULT_POSITION_LIMITS, PositionGuard, type Recurrence, RecentKeys } from "./dedupe.js";
export { readSigningKey, SigningKeyError } from "../signing-key.js";
export { SIGNATURE_PROPERTY, sign, signed, verify, type Verdict } from "../messages/signature.js";
export { type BatchHandler, type ChangeHandler, changes, subscribe, subscribeBatches, type SubscribeOptions, type Subscription } from "./subscribe.js";
export type { SubscriptionStats } from "./stats.js";
export { brokerProtocol } from "./protocol-probe.js";
export { topicFilters } from "./topics.js";
export { cacheKeyOf, type InvalidatableCache, type InvalidateOptions, invalidateCache, type MapLikeCache, type RedisLikeCache } from "./cache.js";
