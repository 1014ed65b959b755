/** Builds pgoutput v1 messages byte by byte, as the protocol documentation lays them out. */
export class Bytes {
  private readonly parts: Buffer[] = [];
  byte(v: number) { this.parts.push(Buffer.from([v])); return this; }
  char(c: string) { return this.byte(c.charCodeAt(0)); }
  u16(v: number) { const b = Buffer.alloc(2); b.writeUInt16BE(v); this.parts.push(b); return this; }
  u32(v: number) { const b = Buffer.alloc(4); b.writeUInt32BE(v); this.parts.push(b); return this; }
  i32(v: number) { const b = Buffer.alloc(4); b.writeInt32BE(v); this.parts.push(b); return this; }
  u64(v: bigint) { const b = Buffer.alloc(8); b.writeBigUInt64BE(v); this.parts.push(b); return this; }
  str(s: string) { this.parts.push(Buffer.from(`${s}\0`)); return this; }
  text(s: string) { const b = Buffer.from(s); return this.char("t").u32(b.length).raw(b); }
  raw(b: Buffer) { this.parts.push(b); return this; }
  done() { return Buffer.concat(this.parts); }
}
