/** What `tera-cdc run` prints on stdout once the embedded default streams: ready to paste. */
export function embeddedBanner(options: {
  databaseUrl: string;
  mqttUrl: string;
  /** Set when tera-cdc started the database itself. */
  embeddedDatabaseDir?: string;
  embeddedBroker: boolean;
  preset?: string;
}): string {
  const lines = ["", "tera-cdc is streaming."];
  if (options.embeddedDatabaseDir) {
    lines.push(
      "",
      `  Embedded PostgreSQL 15, sample OpenTera database (data kept in ${options.embeddedDatabaseDir}):`,
      `    psql ${options.databaseUrl}`,
    );
  }
  if (options.embeddedBroker) lines.push("", `  Embedded MQTT broker (MQTT 3.1.1): ${options.mqttUrl}`);
  lines.push("", "  Watch events:", `    npx tera-cdc tail --mqtt-url ${options.mqttUrl}`);
  if (options.embeddedDatabaseDir) {
    lines.push(
      "",
      "  Make a change:",
      `    psql ${options.databaseUrl} -c "UPDATE t_devices SET device_name = 'Kinect 2' WHERE id_device = 1"`,
    );
  }
  if (options.preset) lines.push("", `  Preset: ${options.preset} (tables, model names and published columns of OpenTera's own events).`);
  lines.push("", "  Stop with Ctrl-C.", "");
  return lines.join("\n");
}
