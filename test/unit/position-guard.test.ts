import { describe, expect, it } from "vitest";
import { PositionGuard, RecentKeys } from "../../src/client/dedupe.js";

const GiB = 1n << 30n;

describe("PositionGuard", () => {
  it("takes the first position, then refuses one further ahead than the lead plus the rate times the seconds since", () => {
    let now = 1_000_000;
    const guard = new PositionGuard({ leadBytes: 16n * GiB, bytesPerSecond: GiB }, () => now);
    expect(guard.check(0x1000n)).toBeNull();
    expect(guard.check(0x1000n + 16n * GiB)).toBeNull(); // exactly the lead
    expect(guard.check(0x1000n + 32n * GiB + 1n)).toMatch(/bytes of WAL ahead of the newest seen/);
    now += 10_000; // ten seconds later, 10 GiB more are possible
    expect(guard.check(0x1000n + 32n * GiB + 10n * GiB)).toBeNull();
    expect(guard.check(0xffffffffffffff00n)).not.toBeNull();
    // Behind the newest (a replay) is never refused here: repeats are the dedupe's business.
    expect(guard.check(0x10n)).toBeNull();
  });

  it("a refused position does not move the newest one", () => {
    const guard = new PositionGuard({ leadBytes: 100n, bytesPerSecond: 0n }, () => 0);
    expect(guard.check(1000n)).toBeNull();
    expect(guard.check(5000n)).not.toBeNull();
    expect(guard.check(1100n)).toBeNull();
    expect(guard.check(1201n)).not.toBeNull();
  });
});

describe("RecentKeys.check", () => {
  it("tells a repeat from a conflict and keeps the first content", () => {
    const keys = new RecentKeys(2);
    expect(keys.check("a", "x")).toBe("new");
    expect(keys.check("a", "x")).toBe("repeat");
    expect(keys.check("a", "y")).toBe("conflict");
    expect(keys.check("a", "x")).toBe("repeat");
    keys.check("b", "x");
    keys.check("c", "x"); // "a" leaves the window
    expect(keys.check("a", "y")).toBe("new");
  });
});
