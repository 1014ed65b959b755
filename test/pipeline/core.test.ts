/**
 * The core in-process: the real Pipeline (decode, plans, batching, publishing, injection,
 * checkpointer) driven by a fake replication stream and a fake sink, both written here from
 * the port contracts in src/pipeline/ports.ts. Payload contents are checked by looking for the
 * JSON text in the bytes, not by our own decoder.
 */
import { EventEmitter } from "node:events";
import { describe, expect, it } from "vitest";
import type { LogicalMessage } from "../../src/decode/pgoutput.js";
import { TypeCatalog } from "../../src/decode/types.js";
import { FatalError, TransientError } from "../../src/errors.js";
import type { Lsn } from "../../src/lsn.js";
import { Pipeline, type PipelineOptions } from "../../src/pipeline/pipeline.js";
import type { DeliveryCallback, EventSink, InjectedEvents, OutgoingMessage, RelationCatalog, StreamControl, StreamObserver } from "../../src/pipeline/ports.js";
import { PipelineStats } from "../../src/pipeline/stats.js";
import { Bytes } from "../support/pgoutput-bytes.js";

// ── Fakes of the ports ─────────────────────────────────────────────────────────────────────────

/**
 * A replication stream: delivers queued WAL only while not paused, as a socket with real
 * back-pressure does, except `slack` items already read when a pause comes (pg-protocol hands
 * over a chunk it has parsed): those the pipeline must queue itself.
 */
class FakeStream implements StreamControl {
  paused = false;
  readonly confirms: Lsn[] = [];
  private readonly pending: ({ payload: Buffer; walStart: Lsn } | { walEnd: Lsn })[] = [];
  pipeline!: Pipeline;
  delivered = 0;
  /** Items delivered while paused (must stay within `slack`). */
  deliveredWhilePaused = 0;

  constructor(private readonly slack = 0) {}

  pause(): void {
    this.paused = true;
  }
  resume(): void {
    this.paused = false;
    this.pump();
  }
  confirm(lsn: Lsn): void {
    this.confirms.push(lsn);
  }
  get confirmed(): Lsn {
    return this.confirms.at(-1) ?? 0n;
  }
  get backlog(): number {
    return this.pending.length;
  }

  send(...payloads: Buffer[]): void {
    for (const payload of payloads) this.pending.push({ payload, walStart: 0n });
    this.pump();
  }
  keepalive(walEnd: Lsn): void {
    this.pending.push({ walEnd });
    this.pump();
  }

  private pumping = false;
  private pump(): void {
    if (this.pumping) return;
    this.pumping = true;
    let extra = 0;
    while (this.pending.length > 0) {
      if (this.paused) {
        if (extra >= this.slack) break;
        extra++;
        this.deliveredWhilePaused++;
      }
      const item = this.pending.shift()!;
      this.delivered++;
      if ("walEnd" in item) this.pipeline.keepalive(item.walEnd);
      else this.pipeline.data(item.walStart, item.payload);
    }
    this.pumping = false;
  }
}

/** A sink with a window of `window` unacknowledged messages; the test acknowledges them, in any order. */
class FakeSink extends EventEmitter implements EventSink {
  readonly published: { message: OutgoingMessage; done: DeliveryCallback; acked: boolean }[] = [];
  maxMessageBytes = Number.POSITIVE_INFINITY;
  /** Publishes made while the sink said it had no room. */
  overruns = 0;

  constructor(private readonly window = 1000) {
    super();
  }

  get inFlight(): number {
    return this.published.filter((p) => !p.acked).length;
  }
  get hasRoom(): boolean {
    return this.inFlight < this.window;
  }
  messageBytes(message: OutgoingMessage): number {
    return message.payload.length + message.topic.length;
  }
  publish(message: OutgoingMessage, done: DeliveryCallback): void {
    if (!this.hasRoom) this.overruns++;
    this.published.push({ message, done, acked: false });
  }
  ack(index: number, error?: Error): void {
    const entry = this.published[index]!;
    if (entry.acked) throw new Error(`message ${index} acknowledged twice`);
    entry.acked = true;
    entry.done(error);
    this.emit("room");
  }
  ackAll(): void {
    // The acknowledgement of one may publish another (a replacement): loop until none is left.
    for (let i = 0; i < this.published.length; i++) if (!this.published[i]!.acked) this.ack(i);
  }
  props(index: number): Readonly<Record<string, string>> {
    return this.published[index]!.message.properties;
  }
}

const catalog: RelationCatalog = {
  types: async () => [],
  primaryKey: async () => ["id"],
};

const silent = { info() {}, warn() {}, error() {} };

// ── WAL builders (pgoutput v1) ─────────────────────────────────────────────────────────────────

const T_DEVICES = 16384;
const T_SITES = 16390;
const relation = (oid: number, table: string) =>
  new Bytes().char("R").u32(oid).str("public").str(table).char("d").u16(2).byte(1).str("id").u32(23).i32(-1).byte(0).str("name").u32(25).i32(-1).done();
const begin = (commitLsn: bigint, xid: number) => new Bytes().char("B").u64(commitLsn).u64(0n).u32(xid).done();
const commit = (commitLsn: bigint, endLsn: bigint) => new Bytes().char("C").byte(0).u64(commitLsn).u64(endLsn).u64(0n).done();
const insert = (oid: number, id: number, name: string) => new Bytes().char("I").u32(oid).char("N").u16(2).text(String(id)).text(name).done();
const del = (oid: number, id: number) => new Bytes().char("D").u32(oid).char("K").u16(2).text(String(id)).char("n").done();
const logical = (lsn: bigint, prefix: string) => new Bytes().char("M").byte(0).u64(lsn).str(prefix).u32(0).done();

/** A transaction of `rows` inserts into t_devices, committed at `end`. */
function transaction(xid: number, end: bigint, rows: number, oid = T_DEVICES): Buffer[] {
  const out = [begin(end - 8n, xid)];
  for (let i = 0; i < rows; i++) out.push(insert(oid, xid * 1000 + i, `row ${i}`));
  out.push(commit(end - 8n, end));
  return out;
}

function setUp(options: Partial<PipelineOptions> = {}, window = 1000, slack = 0) {
  const stream = new FakeStream(slack);
  const sink = new FakeSink(window);
  const stats = new PipelineStats();
  const failures: Error[] = [];
  const pipeline = new Pipeline(
    stream,
    sink,
    catalog,
    new TypeCatalog(),
    {
      tableSettings: () => ({}),
      maxMessageBytes: 256 * 1024 * 1024,
      onOversize: "keys-only",
      deadLetterTopic: "dead/letters",
      batchEvents: 1,
      batchBytes: 1 << 20,
      confirmIntervalMs: 0,
      ...options,
    },
    stats,
    silent,
    0n,
    (error) => failures.push(error),
  );
  stream.pipeline = pipeline;
  stream.send(relation(T_DEVICES, "t_devices"), relation(T_SITES, "t_sites"));
  return { stream, sink, stats, failures, pipeline };
}

const payloadText = (message: OutgoingMessage) => Buffer.from(message.payload).toString("latin1");

// ── Tests ──────────────────────────────────────────────────────────────────────────────────────

describe("pipeline core, in-process (fake stream, fake sink)", () => {
  it("publishes each change with its position and confirms a transaction only once all of it is acknowledged, acks in any order", () => {
    const { stream, sink } = setUp();
    stream.send(...transaction(7, 0x200n, 3), ...transaction(8, 0x300n, 2));
    expect(sink.published.map((p) => [p.message.properties.xid, p.message.properties.seq])).toEqual([
      ["7", "0"], ["7", "1"], ["7", "2"], ["8", "0"], ["8", "1"],
    ]);
    expect(sink.props(0)).toMatchObject({ lsn: "0/1F8", op: "create", table: "public.t_devices" });
    expect(sink.published[0]!.message.topic).toBe("module/TeraServer/DatabaseModule/events/t_devices");
    expect(payloadText(sink.published[0]!.message)).toContain('{"id":7000,"name":"row 0"}');
    // The second transaction fully acknowledged first: nothing can be confirmed yet.
    sink.ack(4);
    sink.ack(3);
    sink.ack(0);
    sink.ack(2);
    expect(stream.confirmed).toBe(0n);
    sink.ack(1);
    // Both move at once, to the end of the second.
    expect(stream.confirmed).toBe(0x300n);
    expect(stream.confirms).toEqual([0x300n]);
  });

  it("a clean stop mid-transaction finishes the transaction (through its COMMIT, confirmed) and then reads nothing more", async () => {
    const { stream, sink, pipeline } = setUp({}, 4, 2);
    stream.send(...transaction(11, 0x1000n, 10), ...transaction(12, 0x2000n, 3));
    expect(sink.published).toHaveLength(4); // the window is full in the middle of transaction 11
    let finished = false;
    const stopped = pipeline.finishTransaction().then(() => (finished = true));
    await Promise.resolve();
    expect(finished).toBe(false);
    let rounds = 0;
    while (!finished && rounds++ < 100) {
      sink.ackAll();
      await Promise.resolve();
    }
    await stopped;
    // All of transaction 11, none of 12; once acknowledged, 11 is confirmed.
    expect(sink.published.map((p) => p.message.properties.xid)).toEqual(Array(10).fill("11"));
    sink.ackAll();
    expect(stream.confirmed).toBe(0x1000n);
    expect(stream.paused).toBe(true);
    stream.send(...transaction(13, 0x3000n, 1));
    expect(sink.published).toHaveLength(10);
    // Between transactions, it stops at once.
    const idle = setUp();
    idle.stream.send(...transaction(14, 0x100n, 2));
    await idle.pipeline.finishTransaction();
    idle.stream.send(...transaction(15, 0x200n, 2));
    expect(idle.sink.published).toHaveLength(2);
  });

  it("keepalives confirm only behind what is in flight", () => {
    const { stream, sink } = setUp();
    stream.keepalive(0x100n);
    expect(stream.confirmed).toBe(0x100n);
    stream.send(...transaction(9, 0x200n, 1));
    stream.keepalive(0x250n);
    expect(stream.confirmed).toBe(0x100n);
    sink.ack(0);
    expect(stream.confirmed).toBe(0x250n);
  });

  it("back-pressure: a full window pauses the stream mid-transaction; acknowledgements resume it; nothing is published beyond the window", () => {
    const { stream, sink, stats } = setUp({}, 4, 2);
    stream.send(...transaction(10, 0x1000n, 20));
    expect(stream.paused).toBe(true);
    expect(sink.published).toHaveLength(4);
    expect(stream.backlog).toBeGreaterThan(0);
    // At most the slack arrived after the pause, and waits in the pipeline's queue.
    expect(stream.deliveredWhilePaused).toBeLessThanOrEqual(2);
    let rounds = 0;
    while (sink.inFlight > 0 && rounds++ < 100) sink.ackAll();
    expect(sink.overruns).toBe(0);
    expect(sink.published.map((p) => Number(p.message.properties.seq))).toEqual([...Array(20).keys()]);
    expect(stream.paused).toBe(false);
    expect(stream.confirmed).toBe(0x1000n);
    expect(stats.changes).toBe(20);
  });

  it("batching: one model per message, at most batchEvents per message, a batch never crosses a transaction or another model", () => {
    const { stream, sink } = setUp({ batchEvents: 3 });
    stream.send(
      begin(0x100n, 20),
      insert(T_DEVICES, 1, "a"),
      insert(T_DEVICES, 2, "b"),
      insert(T_DEVICES, 3, "c"),
      insert(T_DEVICES, 4, "d"),
      insert(T_SITES, 5, "e"),
      insert(T_DEVICES, 6, "f"),
      del(T_DEVICES, 1),
      commit(0x100n, 0x108n),
      ...transaction(21, 0x200n, 2),
    );
    const shape = sink.published.map((p) => [p.message.properties.xid, p.message.properties.seq, p.message.properties.count ?? "1", p.message.properties.op]);
    expect(shape).toEqual([
      ["20", "0", "3", "create,create,create"],
      ["20", "3", "1", "create"],
      ["20", "4", "1", "create"],
      ["20", "5", "2", "create,delete"],
      ["21", "0", "2", "create,create"],
    ]);
    expect(sink.published[4]!.message.topic).toBe("module/TeraServer/DatabaseModule/events/t_devices");
    expect(sink.published[2]!.message.topic).toBe("module/TeraServer/DatabaseModule/events/t_sites");
    sink.ackAll();
    expect(stream.confirmed).toBe(0x200n);
  });

  it("batching by bytes: a batch closes once its estimated size reaches batchBytes", () => {
    const { stream, sink } = setUp({ batchEvents: 100, batchBytes: 200 });
    stream.send(...transaction(22, 0x100n, 5));
    const counts = sink.published.map((p) => Number(p.message.properties.count ?? "1"));
    expect(counts.reduce((a, b) => a + b, 0)).toBe(5);
    expect(counts.length).toBeGreaterThan(1);
    expect(Math.max(...counts)).toBeLessThan(5);
  });

  describe("oversize rules", () => {
    const big = "x".repeat(5000);
    const oversized = (rule: PipelineOptions["onOversize"]) => {
      const setup = setUp({ onOversize: rule, maxMessageBytes: 1000 });
      setup.stream.send(begin(0x100n, 30), insert(T_DEVICES, 42, big), insert(T_DEVICES, 43, "small"), commit(0x100n, 0x108n));
      return setup;
    };

    it("keys-only: the same topic, the key columns only, marked and counted", () => {
      const { sink, stats, stream } = oversized("keys-only");
      expect(sink.published).toHaveLength(2);
      const first = sink.published[0]!.message;
      expect(first.topic).toBe("module/TeraServer/DatabaseModule/events/t_devices");
      expect(first.properties).toMatchObject({ "keys-only": "true", reason: "oversize", seq: "0" });
      expect(payloadText(first)).toContain('{"id":42}');
      expect(payloadText(first)).not.toContain("xxxx");
      expect(stats.oversize).toBe(1);
      sink.ackAll();
      expect(stream.confirmed).toBe(0x108n);
    });

    it("dead-letter: to the dead-letter topic (keys only when the full event does not fit there either)", () => {
      const { sink } = oversized("dead-letter");
      const first = sink.published[0]!.message;
      expect(first.topic).toBe("dead/letters");
      expect(first.properties).toMatchObject({ "original-topic": "module/TeraServer/DatabaseModule/events/t_devices", "keys-only": "true" });
      expect(sink.published[1]!.message.topic).toBe("module/TeraServer/DatabaseModule/events/t_devices");
    });

    it("skip: not published, counted, and the position is still confirmed", () => {
      const { sink, stats, stream } = oversized("skip");
      expect(sink.published.map((p) => p.message.properties.seq)).toEqual(["1"]);
      expect(stats.skipped).toBe(1);
      sink.ackAll();
      expect(stream.confirmed).toBe(0x108n);
    });

    it("a refusal by the destination follows the rule once; a refused replacement is skipped and the position still moves", () => {
      const { stream, sink, stats } = setUp({ onOversize: "keys-only" });
      stream.send(...transaction(31, 0x100n, 1));
      sink.ack(0, new Error("not authorized"));
      expect(sink.published).toHaveLength(2);
      expect(sink.props(1)).toMatchObject({ "keys-only": "true", reason: "refused: not authorized" });
      expect(stream.confirmed).toBe(0n);
      sink.ack(1, new Error("not authorized"));
      expect(sink.published).toHaveLength(2);
      expect(stats.rejected).toBe(1);
      expect(stats.skipped).toBe(1);
      expect(stream.confirmed).toBe(0x100n);
    });
  });

  describe("injection between transactions", () => {
    const observer = (items: InjectedEvents["items"]): StreamObserver & { safe: Lsn[]; plan: InjectedEvents["plan"] | null } => {
      const seen = { safe: [] as Lsn[], plan: null as InjectedEvents["plan"] | null };
      return Object.assign(seen, {
        onLogicalMessage(message: LogicalMessage): InjectedEvents | null {
          if (message.prefix !== "inject" || !seen.plan) return null;
          return { plan: seen.plan, items, properties: { snapshot: "s1" }, lsn: message.lsn };
        },
        onRowChange(plan: InjectedEvents["plan"]) {
          seen.plan ??= plan;
        },
        onSafeLsn(lsn: Lsn) {
          seen.safe.push(lsn);
        },
      });
    };

    it("injected rows and markers come after the transaction before the message and before the one after it, under the same window", () => {
      const watcher = observer([{ marker: { marker: "start" } }, { row: ["1", "one"] }, { row: ["2", "two"] }, { row: ["3", "three"] }, { marker: { marker: "end" } }]);
      const { stream, sink } = setUp({ observer: watcher }, 2);
      stream.send(...transaction(40, 0x100n, 1), logical(0x150n, "inject"), ...transaction(41, 0x200n, 1));
      let rounds = 0;
      while (sink.inFlight > 0 && rounds++ < 50) sink.ackAll();
      expect(sink.overruns).toBe(0);
      const order = sink.published.map((p) => (p.message.properties.snapshot ? `inject:${p.message.properties.marker ?? "row"}` : p.message.properties.xid));
      expect(order).toEqual(["40", "inject:start", "inject:row", "inject:row", "inject:row", "inject:end", "41"]);
      expect(sink.props(2)).toMatchObject({ snapshot: "s1", lsn: "0/150", op: "update", xid: "0" });
      expect(payloadText(sink.published[2]!.message)).toContain('{"id":1,"name":"one"}');
      expect(stream.confirmed).toBe(0x200n);
      expect(watcher.safe).toContain(0x150n);
    });

    it("with --batch-events, injected rows share TeraEvents up to the limit; a marker closes a batch and goes alone", () => {
      const rows = Array.from({ length: 7 }, (_, i) => ({ row: [String(i + 1), `row ${i + 1}`] }));
      const watcher = observer([{ marker: { marker: "start" } }, ...rows.slice(0, 5), { marker: { marker: "middle" } }, ...rows.slice(5), { marker: { marker: "end" } }]);
      const { stream, sink } = setUp({ observer: watcher, batchEvents: 3 }, 100);
      stream.send(...transaction(40, 0x100n, 1), logical(0x150n, "inject"));
      const injected = sink.published.filter((p) => p.message.properties.snapshot === "s1").map((p) => p.message.properties);
      expect(injected.map((p) => p.marker ?? `${p.count ?? 1}@${p.seq}`)).toEqual(["start", "3@1", "2@4", "middle", "2@7", "end"]);
      expect(injected[1]).toMatchObject({ op: "update,update,update", count: "3", lsn: "0/150", snapshot: "s1" });
      const batch = sink.published.find((p) => p.message.properties.seq === "1" && p.message.properties.snapshot === "s1")!;
      for (const text of ['{"id":1,"name":"row 1"}', '{"id":2,"name":"row 2"}', '{"id":3,"name":"row 3"}']) expect(payloadText(batch.message)).toContain(text);
      sink.ackAll();
      expect(stream.confirmed).toBe(0x150n);
    });

    it("the message's LSN is confirmed only once every injected event is acknowledged", () => {
      const watcher = observer([{ row: ["1", "one"] }, { row: ["2", "two"] }]);
      const { stream, sink } = setUp({ observer: watcher });
      stream.send(...transaction(42, 0x100n, 1), logical(0x150n, "inject"));
      sink.ack(0);
      expect(stream.confirmed).toBe(0x100n);
      sink.ack(2);
      expect(stream.confirmed).toBe(0x100n);
      sink.ack(1);
      expect(stream.confirmed).toBe(0x150n);
    });
  });

  it("a sink failure mid-transaction (refusals of some of its messages) still publishes the rest in order and confirms after the last", () => {
    const { stream, sink } = setUp({ onOversize: "skip" });
    stream.send(...transaction(50, 0x100n, 5), ...transaction(51, 0x200n, 1));
    sink.ack(5);
    sink.ack(0);
    sink.ack(1, new Error("quota exceeded"));
    sink.ack(3);
    expect(stream.confirmed).toBe(0n);
    sink.ack(2, new Error("quota exceeded"));
    sink.ack(4);
    expect(stream.confirmed).toBe(0x200n);
  });

  it("a lost sink connection mid-transaction: nothing is confirmed past what was acknowledged", () => {
    const { stream, sink, pipeline } = setUp({}, 3);
    stream.send(...transaction(52, 0x100n, 2), ...transaction(53, 0x200n, 4));
    sink.ack(0);
    sink.ack(1);
    expect(stream.confirmed).toBe(0x100n);
    // The sink goes away with seq 0 of xid 53 unacknowledged: the service tears the stream down.
    pipeline.detach();
    sink.ack(3);
    expect(pipeline.flush()).toBe(0x100n);
  });

  it("a catalog look-up holds the stream; a lost catalog connection is a TransientError, a refused query a FatalError", async () => {
    for (const [failure, kind] of [
      [Object.assign(new Error("Connection terminated unexpectedly"), {}), TransientError],
      [Object.assign(new Error("permission denied for table pg_index"), { code: "42501" }), FatalError],
    ] as const) {
      const stream = new FakeStream();
      const sink = new FakeSink();
      const failures: Error[] = [];
      let release: () => void = () => {};
      const gate = new Promise<void>((resolve) => (release = resolve));
      const slowCatalog: RelationCatalog = { types: async () => [], primaryKey: async () => { await gate; throw failure; } };
      const pipeline = new Pipeline(stream, sink, slowCatalog, new TypeCatalog(), {
        tableSettings: () => ({}), maxMessageBytes: 1 << 20, onOversize: "skip", deadLetterTopic: "d", batchEvents: 1, batchBytes: 1, confirmIntervalMs: 0,
      }, new PipelineStats(), silent, 0n, (error) => failures.push(error));
      stream.pipeline = pipeline;
      // Replica identity FULL ('f'): the key must be looked up.
      const full = new Bytes().char("R").u32(1).str("public").str("t").char("f").u16(1).byte(0).str("id").u32(23).i32(-1).done();
      stream.send(full, ...transaction(60, 0x100n, 1, 1));
      expect(stream.paused).toBe(true);
      expect(sink.published).toHaveLength(0);
      release();
      await new Promise((resolve) => setTimeout(resolve, 0));
      expect(failures).toHaveLength(1);
      expect(failures[0]).toBeInstanceOf(kind);
      expect(failures[0]!.message).toMatch(/^reading the catalog for public\.t failed: /);
      expect(failures[0]!.cause).toBe(failure);
    }
  });

  it("with a signing key every message is signed, replacements too (the one place messages leave the core)", () => {
    const { stream, sink } = setUp({ signingKey: new Uint8Array(32).fill(7), onOversize: "keys-only", maxMessageBytes: 1000 });
    stream.send(begin(0x100n, 70), insert(T_DEVICES, 1, "x".repeat(3000)), insert(T_DEVICES, 2, "small"), commit(0x100n, 0x108n));
    expect(sink.published).toHaveLength(2);
    expect(sink.props(0)["keys-only"]).toBe("true");
    for (const p of sink.published) expect(p.message.properties.sig).toMatch(/\S{16,}/);
    expect(sink.props(0).sig).not.toBe(sink.props(1).sig);
  });

  it("a WAL message that cannot be decoded is a FatalError and stops reading", () => {
    const { stream, failures } = setUp();
    stream.send(new Bytes().char("S").done());
    expect(failures).toHaveLength(1);
    expect(failures[0]).toBeInstanceOf(FatalError);
    expect(stream.paused).toBe(true);
  });
});
