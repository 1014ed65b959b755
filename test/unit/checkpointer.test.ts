import { describe, expect, it } from "vitest";
import { Checkpointer } from "../../src/checkpoint/checkpointer.js";
import { DeliveryTracker } from "../../src/checkpoint/tracker.js";
import { FatalError } from "../../src/errors.js";
import type { Lsn } from "../../src/lsn.js";

const target = () => {
  const sent: [Lsn, number | undefined][] = [];
  return { sent, confirm: (lsn: Lsn, minIntervalMs?: number) => void sent.push([lsn, minIntervalMs]) };
};

describe("Checkpointer", () => {
  it("confirms only when the safe position moves, with the interval, and tells the listener after the target", () => {
    const to = target();
    const told: Lsn[] = [];
    const checkpointer = new Checkpointer(0x10n, to, { minIntervalMs: 100, onConfirmed: (lsn) => told.push(lsn) });
    const a = checkpointer.open();
    checkpointer.sent(a);
    checkpointer.sent(a);
    checkpointer.close(a, 0x20n);
    expect(to.sent).toEqual([]);
    checkpointer.delivered(a);
    checkpointer.delivered(a);
    expect(to.sent).toEqual([[0x20n, 100]]);
    expect(told).toEqual([0x20n]);
    // A keepalive at or below the safe position moves nothing.
    checkpointer.passed(0x18n);
    expect(to.sent).toHaveLength(1);
    expect(checkpointer.flush()).toBe(0x20n);
    expect(to.sent.at(-1)).toEqual([0x20n, 0]);
  });

  it("refuses to move the confirmed position backwards instead of ignoring it", () => {
    class BackwardsTracker extends DeliveryTracker {
      lsn: Lsn = 0x100n;
      override get safeLsn(): Lsn {
        return this.lsn;
      }
      override passed(): boolean {
        return true;
      }
    }
    const tracker = new BackwardsTracker(0x100n);
    const to = target();
    const checkpointer = new Checkpointer(0x100n, to, { minIntervalMs: 0 }, tracker);
    checkpointer.passed(0x100n);
    tracker.lsn = 0xffn;
    expect(() => checkpointer.passed(0x200n)).toThrow(FatalError);
    expect(() => checkpointer.flush()).toThrow(/backwards from 256 to 255/);
    expect(to.sent.map(([lsn]) => lsn)).toEqual([0x100n]);
  });
});
