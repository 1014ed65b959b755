import { describe, expect, it } from "vitest";
import type { ReceivedEvent } from "../harness/consumer.js";
import { checkDelivery, duplicatesOutsideTail } from "./support.js";

/** The fault suites' verdicts rest on this checker: it must reject each kind of bad delivery. */

/** Transactions of two rows each: ids 1-2 at 0/100, 3-4 at 0/200, 5-6 at 0/300, all in table public.t. */
function event(id: number): ReceivedEvent {
  const lsn = `0/${(Math.ceil(id / 2) * 0x100).toString(16).toUpperCase()}`;
  const seq = (id - 1) % 2;
  return {
    topic: "module/TeraServer/DatabaseModule/events/t",
    headerTopic: "",
    time: 0,
    type: 1,
    model: "t",
    object: { id },
    objectText: `{"id":${id}}`,
    properties: { table: "public.t", lsn, seq: String(seq) },
    lsn,
    seq,
    receivedAt: 0,
    contentType: "application/x-protobuf",
  } as ReceivedEvent;
}

const expected = new Map([["public.t", [1, 2, 3, 4, 5, 6]]]);
const stream = (...ids: number[]) => ids.map(event);

describe("checkDelivery", () => {
  it("accepts a complete, ordered stream", () => {
    expect(checkDelivery(stream(1, 2, 3, 4, 5, 6), expected, { allowReplays: false }).duplicates).toBe(0);
  });

  it("accepts one replayed tail from a transaction start and reports it", () => {
    const report = checkDelivery(stream(1, 2, 3, 4, 3, 4, 5, 6), expected, { allowReplays: true, replayFromTransactionStart: true });
    expect(report.duplicates).toBe(2);
    expect(report.replays).toEqual([{ from: "0/200/0", length: 2 }]);
  });

  it("rejects a missing change", () => {
    expect(() => checkDelivery(stream(1, 2, 3, 5, 6), expected, { allowReplays: true })).toThrow(/never arrived/);
  });

  it("rejects changes out of commit order", () => {
    expect(() => checkDelivery(stream(1, 2, 5, 6, 3, 4), expected, { allowReplays: true })).toThrow(/out of commit order/);
  });

  it("rejects duplicates where none are allowed", () => {
    expect(() => checkDelivery(stream(1, 2, 2, 3, 4, 5, 6), expected, { allowReplays: false })).toThrow(/no duplicates/);
  });

  it("rejects a duplicate that is not a contiguous tail", () => {
    expect(() => checkDelivery(stream(1, 2, 3, 4, 1, 5, 6), expected, { allowReplays: true })).toThrow(/replay/);
  });

  it("rejects a replay that starts inside a transaction when it must start at one", () => {
    expect(() => checkDelivery(stream(1, 2, 3, 4, 4, 5, 6), expected, { allowReplays: true, replayFromTransactionStart: true })).toThrow(/inside a transaction/);
  });

  it("rejects an unexpected table", () => {
    const stray = { ...event(7), properties: { ...event(7).properties, table: "public.other" } };
    expect(() => checkDelivery([...stream(1, 2, 3, 4, 5, 6), stray], expected, { allowReplays: true })).toThrow(/unexpected table/);
  });
});

describe("duplicatesOutsideTail", () => {
  const firstRun = stream(1, 2, 3, 4);
  it("accepts duplicates of exactly the transactions at or after the confirmed position", () => {
    expect(duplicatesOutsideTail(firstRun, stream(1, 2, 3, 4, 3, 4, 5, 6), 0x200n)).toEqual([]);
  });
  it("names a confirmed transaction sent again, and an unconfirmed one not sent again", () => {
    expect(duplicatesOutsideTail(firstRun, stream(1, 2, 3, 4, 1, 2, 3, 4, 5, 6), 0x200n)).toEqual(["0/100/0", "0/100/1"]);
    expect(duplicatesOutsideTail(firstRun, stream(1, 2, 3, 4, 5, 6), 0x200n)).toEqual(["0/200/0", "0/200/1"]);
  });
});
