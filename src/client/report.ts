import type { Change } from "./change.js";

/** Where a subscription's errors go: the caller's onError, else one line on stderr. */
export function errorReporter(options: { readonly onError?: (error: Error, change?: Change) => void }): (error: Error, change?: Change) => void {
  return (
    options.onError ??
    ((error, change) => {
      const where = change ? ` (${change.model} ${change.op} lsn ${change.lsn} seq ${change.seq})` : "";
      process.stderr.write(`tera-cdc client: ${error.message.split("\n")[0]}${where}\n`);
    })
  );
}

/** Whatever was thrown, as an Error (handlers may throw anything). */
export function asError(error: unknown): Error {
  return error instanceof Error ? error : new Error(String(error));
}
