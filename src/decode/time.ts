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

/**
 * A pgoutput timestamp as `datetime.isoformat()` writes it in UTC: microseconds kept, fraction
 * omitted when zero, `+00:00` offset.
 */
export function postgresMicrosToIso(micros: bigint): string {
  const unixMicros = micros + BigInt(POSTGRES_EPOCH_SECONDS) * 1_000_000n;
  let millis = unixMicros / 1000n;
  let micro = unixMicros % 1_000_000n;
  if (micro < 0n) micro += 1_000_000n;
  if (unixMicros < 0n && unixMicros % 1000n !== 0n) millis -= 1n;
  const base = new Date(Number(millis)).toISOString().slice(0, 19);
  const fraction = micro === 0n ? "" : `.${micro.toString().padStart(6, "0")}`;
  return `${base}${fraction}+00:00`;
}
