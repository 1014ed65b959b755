import { describe, expect, it } from "vitest";
import { formatLsn, parseLsn } from "../../src/lsn.js";
import { postgresMicrosToIso, postgresMicrosToUnixSeconds } from "../../src/decode/time.js";

describe("LSNs and pgoutput times", () => {
  it("reads both spellings of an LSN as the same number and writes PostgreSQL's", () => {
    expect(parseLsn("0/1533550")).toBe(0x1533550n);
    expect(parseLsn("00000000/01533550")).toBe(0x1533550n);
    expect(parseLsn("16/B374D848")).toBe((0x16n << 32n) | 0xb374d848n);
    expect(formatLsn(parseLsn("00000016/0B374D84"))).toBe("16/B374D84");
    expect(() => parseLsn("16-B3")).toThrow(/not an LSN/);
  });

  it("turns commit times into Unix seconds and isoformat() with microseconds", () => {
    // 2026-11-26T03:39:00.764686Z is 848_979_540.764686 s after 2000-01-01.
    const micros = 848_979_540_764_686n;
    expect(postgresMicrosToIso(micros)).toBe("2026-11-26T03:39:00.764686+00:00");
    expect(postgresMicrosToUnixSeconds(micros)).toBeCloseTo(1_795_664_340.764686, 6);
    expect(postgresMicrosToIso(848_979_540_000_000n)).toBe("2026-11-26T03:39:00+00:00");
  });
});

describe("commit times across seconds and before the Unix epoch", () => {
  it("formats each transaction's own second, fraction and all", () => {
    const base = 848_979_540_000_000n; // 2026-11-26T03:39:00Z in pgoutput micros
    expect(postgresMicrosToIso(base + 999_999n)).toBe("2026-11-26T03:39:00.999999+00:00");
    expect(postgresMicrosToIso(base + 1_000_000n)).toBe("2026-11-26T03:39:01+00:00");
    expect(postgresMicrosToIso(base + 1_000_010n)).toBe("2026-11-26T03:39:01.000010+00:00");
    expect(postgresMicrosToIso(base)).toBe("2026-11-26T03:39:00+00:00");
    // 1969-12-31T23:59:59.5Z: before both epochs.
    expect(postgresMicrosToIso(-946_684_800_500_000n)).toBe("1969-12-31T23:59:59.500000+00:00");
  });
});
