// The test support code uses the public API plus two registry helpers.
export * from "../../../src/messages/index.js";
import { codecOf, knownNameOfFullName } from "../../../src/messages/registry.js";
import type { KnownMessageName } from "../../../src/messages/index.js";

export const codecOfName = codecOf;

/** "type.googleapis.com/opentera.protobuf.X" or "opentera.protobuf.X" -> "X" if X is ours. */
export function knownNameOfTypeUrl(typeUrl: string): KnownMessageName | undefined {
  return knownNameOfFullName(typeUrl.slice(typeUrl.lastIndexOf("/") + 1));
}
