/**
 * A PostgreSQL log sequence number. Kept as a bigint so that positions compare as numbers: the
 * server spells the same LSN several ways (`0/1533550`, `00000000/015336B8`).
 */
export type Lsn = bigint;

export const ZERO_LSN: Lsn = 0n;

const LSN_TEXT = /^([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})$/;

export function parseLsn(text: string): Lsn {
  const match = LSN_TEXT.exec(text.trim());
  if (!match) throw new Error(`not an LSN: "${text}" (expected two hex numbers like 0/1533550)`);
  return (BigInt(`0x${match[1]}`) << 32n) | BigInt(`0x${match[2]}`);
}

/** PostgreSQL's own spelling (`pg_lsn` output), so a user can paste it into SQL. */
export function formatLsn(lsn: Lsn): string {
  return `${(lsn >> 32n).toString(16).toUpperCase()}/${(lsn & 0xffffffffn).toString(16).toUpperCase()}`;
}

export function maxLsn(a: Lsn, b: Lsn): Lsn {
  return a > b ? a : b;
}
