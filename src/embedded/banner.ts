import { redactUrl } from "../ops/log.js";
import type { EmbeddedBrokerKind } from "./broker.js";

/** What MQTT 3.1.1 (the aedes fallback) cannot carry, said once in the banner. */
export const MQTT311_LOSSES =
  "events carry no lsn/seq (no duplicate detection in the client library, the audit sink refuses the broker, the gateway's resume is degraded) and truncates are told by an empty object";

/** What `tera-cdc run` prints on stdout once the embedded default streams: ready to paste. */
export function embeddedBanner(options: {
  mqttUrl: string;
  /** Set when tera-cdc started the database itself: its URL without password, and the password file. */
  database?: { url: string; dir: string; pgpassFile: string };
  /** Set when tera-cdc started the broker itself. */
  broker?: { kind: EmbeddedBrokerKind };
  /** The data folder, when not the default one (the local commands must be told it). */
  dataDirFlag?: string;
  /** The live page of the development gateway, or why there is none. */
  page?: { url: string } | { unavailable: string };
  preset?: string;
}): string {
  const lines = ["", "tera-cdc is streaming."];
  const psql = options.database ? `PGPASSFILE=${options.database.pgpassFile} psql ${options.database.url}` : undefined;
  const dataDir = options.dataDirFlag ? ` --data-dir ${options.dataDirFlag}` : "";
  if (options.database) {
    lines.push(
      "",
      `  Embedded PostgreSQL 15, sample OpenTera database (data and generated credentials kept in ${options.database.dir}):`,
      `    ${psql}`,
    );
  }
  if (options.broker?.kind === "mosquitto") {
    lines.push("", `  Embedded MQTT broker (Mosquitto, MQTT 5; generated credentials, found by the local commands): ${options.mqttUrl}`);
  } else if (options.broker) {
    lines.push(
      "",
      `  Embedded MQTT broker (aedes, MQTT 3.1.1 only; generated credentials, found by the local commands): ${options.mqttUrl}`,
      `    MQTT 3.1.1: ${MQTT311_LOSSES}. Install mosquitto (apt-get install mosquitto) for MQTT 5.`,
    );
  }
  if (options.page && "url" in options.page) {
    lines.push("", "  Live page (development gateway on 127.0.0.1; a week-long development token for examples/gateway-rules.yaml):", `    ${options.page.url}`);
  } else if (options.page) {
    lines.push("", `  Live page: not available: ${options.page.unavailable}.`);
  }
  lines.push("", "  Watch events (start it before making the change):", `    npx tera-cdc tail --mqtt-url ${redactUrl(options.mqttUrl)}${dataDir}`);
  if (psql) {
    lines.push("", "  Make a change:", `    ${psql} -c "UPDATE t_devices SET device_name = 'Kinect 2' WHERE id_device = 1"`);
  }
  if (options.preset) lines.push("", `  Preset: ${options.preset} (tables, model names and published columns of OpenTera's own events).`);
  lines.push("", "  Stop with Ctrl-C.", "");
  return lines.join("\n");
}
