import { describe, expect, it } from "vitest";
import { PgoutputDecoder, PgoutputProtocolError } from "../../src/decode/pgoutput.js";
import { Bytes } from "../support/pgoutput-bytes.js";


const relationMessage = new Bytes().char("R").u32(16384).str("public").str("t_devices").char("d").u16(2)
  .byte(1).str("id_device").u32(23).i32(-1)
  .byte(0).str("device_name").u32(25).i32(-1).done();

describe("pgoutput decoder", () => {
  it("decodes begin, relation, insert, update with old key, delete, truncate and commit", () => {
    const decoder = new PgoutputDecoder();
    expect(decoder.decode(new Bytes().char("B").u64(0x1000n).u64(5n).u32(42).done())).toEqual({ tag: "begin", commitLsn: 0x1000n, commitTime: 5n, xid: 42 });
    const relation = decoder.decode(relationMessage);
    expect(relation).toMatchObject({ tag: "relation", relationOid: 16384, schema: "public", table: "t_devices", replicaIdentity: "d" });
    const insert = decoder.decode(new Bytes().char("I").u32(16384).char("N").u16(2).text("7").char("n").done());
    expect(insert).toMatchObject({ tag: "insert", newValues: ["7", null] });
    const update = decoder.decode(new Bytes().char("U").u32(16384).char("K").u16(2).text("6").char("n").char("N").u16(2).text("7").char("u").done());
    expect(update).toMatchObject({ tag: "update", oldValues: ["6", null], oldIsFullRow: false, newValues: ["7", undefined] });
    const del = decoder.decode(new Bytes().char("D").u32(16384).char("O").u16(2).text("7").text("Kit").done());
    expect(del).toMatchObject({ tag: "delete", oldValues: ["7", "Kit"], oldIsFullRow: true });
    const truncate = decoder.decode(new Bytes().char("T").u32(1).byte(3).u32(16384).done());
    expect(truncate).toMatchObject({ tag: "truncate", cascade: true, restartIdentity: true });
    expect(decoder.decode(new Bytes().char("C").byte(0).u64(0x1000n).u64(0x1030n).u64(5n).done())).toEqual({ tag: "commit", commitLsn: 0x1000n, endLsn: 0x1030n, commitTime: 5n });
  });

  it("keeps UTF-8 text intact", () => {
    const decoder = new PgoutputDecoder();
    decoder.decode(relationMessage);
    const insert = decoder.decode(new Bytes().char("I").u32(16384).char("N").u16(2).text("1").text("Émile 🚀").done());
    expect(insert).toMatchObject({ newValues: ["1", "Émile 🚀"] });
  });

  it("gives a typed error for a truncated message, a row of an unknown relation and an unknown tag", () => {
    const decoder = new PgoutputDecoder();
    expect(() => decoder.decode(new Bytes().char("I").u32(99).char("N").u16(0).done())).toThrow(PgoutputProtocolError);
    decoder.decode(relationMessage);
    expect(() => decoder.decode(new Bytes().char("I").u32(16384).char("N").u16(2).char("t").u32(100).done())).toThrow(/truncated/);
    expect(() => decoder.decode(new Bytes().char("S").done())).toThrow(/unknown pgoutput message/);
  });
});
