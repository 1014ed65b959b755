/** PostgreSQL's epoch (2000-01-01T00:00:00Z) in seconds since the Unix epoch. */
const POSTGRES_EPOCH_SECONDS = 946_684_800;

/** A pgoutput timestamp (microseconds since 2000-01-01 UTC) as Unix seconds with a microsecond fraction. */
export function postgresMicrosToUnixSeconds(micros: bigint): number {
  const whole = micros / 1_000_000n;
  const fraction = micros % 1_000_000n;
  return Number(whole) + POSTGRES_EPOCH_SECONDS + Number(fraction) / 1e6;
}

/** Unix seconds now, in pgoutput's microseconds-since-2000 form (for standby status updates). */
export function nowAsPostgresMicros(): bigint {
  return BigInt(Date.now() - POSTGRES_EPOCH_SECONDS * 1000) * 1000n;
}

/** The date-and-time part of the last second formatted: transactions come many to a second. */
let formattedSecond = Number.NaN;
let formattedPrefix = "";

/**
 * A pgoutput timestamp as `datetime.isoformat()` writes it in UTC: microseconds kept, fraction
 * omitted when zero, `+00:00` offset. Runs once per transaction, so it avoids BigInt arithmetic
 * and formats each second's date only once.
 */
export function postgresMicrosToIso(micros: bigint): string {
  const unixMicros = Number(micros) + POSTGRES_EPOCH_SECONDS * 1_000_000;
  // Exact in a double until the year 2255; past that, the BigInt path.
  if (!Number.isSafeInteger(unixMicros)) return postgresMicrosToIsoExact(micros);
  const second = Math.floor(unixMicros / 1_000_000);
  const micro = unixMicros - second * 1_000_000;
  if (second !== formattedSecond) {
    formattedSecond = second;
    formattedPrefix = new Date(second * 1000).toISOString().slice(0, 19);
  }
  return micro === 0 ? `${formattedPrefix}+00:00` : `${formattedPrefix}.${String(micro).padStart(6, "0")}+00:00`;
}

function postgresMicrosToIsoExact(micros: bigint): string {
  const unixMicros = micros + BigInt(POSTGRES_EPOCH_SECONDS) * 1_000_000n;
  let micro = unixMicros % 1_000_000n;
  if (micro < 0n) micro += 1_000_000n;
  const second = (unixMicros - micro) / 1_000_000n;
  const base = new Date(Number(second) * 1000).toISOString().slice(0, 19);
  return micro === 0n ? `${base}+00:00` : `${base}.${micro.toString().padStart(6, "0")}+00:00`;
}
