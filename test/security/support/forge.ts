// What an attacker on the broker does: publish a DatabaseEvent of their own making on an event
// topic, with whatever position properties they like. Also the test's signing key file.
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import mqtt from "mqtt";
import { encodeDatabaseTeraEvent } from "../../../src/messages/index.js";

/** A fresh owner-only key file, as an operator makes one (`openssl rand -hex 32 > key; chmod 600 key`). */
export function signingKeyFile(): string {
  const file = join(mkdtempSync(join(tmpdir(), "tera-key-")), "signing.key");
  writeFileSync(file, `${Buffer.from(crypto.getRandomValues(new Uint8Array(32))).toString("hex")}\n`, { mode: 0o600 });
  return file;
}

export interface Forgery {
  readonly model: string;
  readonly object: Record<string, unknown>;
  /** DB_CREATE 1, DB_UPDATE 2, DB_DELETE 3. */
  readonly type?: number;
  readonly properties: Record<string, string>;
}

/** Publishes the forgeries (QoS 1, MQTT 5) from a client of the attacker's own; resolves once the broker has them all. */
export async function publishForgeries(url: string, forgeries: readonly Forgery[]): Promise<void> {
  const attacker = await mqtt.connectAsync(url, { protocolVersion: 5, clientId: `attacker-${process.pid}-${Date.now()}` });
  try {
    for (const f of forgeries) {
      const dotted = `module.TeraServer.DatabaseModule.events.${f.model}`;
      const payload = encodeDatabaseTeraEvent(dotted, Date.parse("2020-01-01T00:00:00Z") / 1000, [{ type: f.type ?? 2, objectType: f.model, objectValue: JSON.stringify(f.object) }]);
      await attacker.publishAsync(dotted.replaceAll(".", "/"), Buffer.from(payload), { qos: 1, properties: { userProperties: f.properties } });
    }
  } finally {
    await attacker.endAsync();
  }
}

/** The user properties `run` would give an update of `table` (the attacker copies them). */
export function positionProperties(lsn: string, seq: number, table: string, commitTime = "2020-01-01T00:00:00.000000+00:00", op = "update"): Record<string, string> {
  return { lsn, xid: "1", "commit-time": commitTime, table, seq: String(seq), op };
}
