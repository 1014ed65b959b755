import { describe, expect, it } from "vitest";
import { DeliveryTracker } from "../../src/checkpoint/tracker.js";

describe("DeliveryTracker: the LSN safe to confirm", () => {
  it("confirms a transaction only when all its messages are delivered", () => {
    const tracker = new DeliveryTracker(10n);
    const tx = tracker.open();
    tracker.sent(tx);
    tracker.sent(tx);
    expect(tracker.close(tx, 100n)).toBe(false);
    expect(tracker.delivered(tx)).toBe(false);
    expect(tracker.safeLsn).toBe(10n);
    expect(tracker.delivered(tx)).toBe(true);
    expect(tracker.safeLsn).toBe(100n);
  });

  it("never moves past an earlier transaction that is still in flight", () => {
    const tracker = new DeliveryTracker(0n);
    const first = tracker.open();
    tracker.sent(first);
    tracker.close(first, 100n);
    const second = tracker.open();
    tracker.sent(second);
    tracker.close(second, 200n);
    tracker.delivered(second);
    expect(tracker.safeLsn).toBe(0n);
    tracker.delivered(first);
    expect(tracker.safeLsn).toBe(200n);
  });

  it("does not confirm an open transaction even with nothing in flight", () => {
    const tracker = new DeliveryTracker(0n);
    tracker.open();
    expect(tracker.passed(500n)).toBe(false);
    expect(tracker.safeLsn).toBe(0n);
  });

  it("confirms a keepalive position at once when nothing is pending, and only forward", () => {
    const tracker = new DeliveryTracker(50n);
    expect(tracker.passed(40n)).toBe(false);
    expect(tracker.passed(80n)).toBe(true);
    expect(tracker.safeLsn).toBe(80n);
  });

  it("holds a keepalive position behind the transactions before it", () => {
    const tracker = new DeliveryTracker(0n);
    const tx = tracker.open();
    tracker.sent(tx);
    tracker.close(tx, 100n);
    tracker.passed(300n);
    expect(tracker.safeLsn).toBe(0n);
    tracker.delivered(tx);
    expect(tracker.safeLsn).toBe(300n);
  });

  it("keeps one small entry per transaction whatever its size", () => {
    const tracker = new DeliveryTracker(0n);
    const tx = tracker.open();
    for (let i = 0; i < 100_000; i++) tracker.sent(tx);
    tracker.close(tx, 1n << 40n);
    for (let i = 0; i < 100_000; i++) tracker.delivered(tx);
    expect(tracker.safeLsn).toBe(1n << 40n);
    expect(tracker.backlog).toBe(0);
  });
});
