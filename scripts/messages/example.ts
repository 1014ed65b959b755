// The message library in a nutshell (docs/messages.md; run: npx tsx scripts/messages/example.ts).
import {
  DatabaseEvent,
  DatabaseEvent_EventType,
  databaseEventTopic,
  decodeTeraEvent,
  encodeDatabaseTeraEvent,
  encodeMessage,
  LogEvent,
  LogEvent_LogLevel,
  RPCMessage,
  teraEvent,
  teraMessage,
  teraModuleMessage,
  toMqttTopic,
  unpackAny,
} from "../../src/messages/index.js";

// 1. A database event, wrapped in a TeraEvent (header version 1, time in seconds, topic).
const topic = databaseEventTopic("device"); // module.TeraServer.DatabaseModule.events.device
const created: DatabaseEvent = {
  $type: DatabaseEvent.$type,
  type: DatabaseEvent_EventType.DB_CREATE,
  objectType: "device",
  objectValue: JSON.stringify({ id_device: 1, device_name: "Tablette" }),
};
const event = teraEvent({ topic, time: new Date("2024-04-05T12:00:00.250Z"), events: [created] });
const bytes = encodeMessage(event);
console.log(`publish ${bytes.length} bytes on MQTT topic ${toMqttTopic(topic)}`);

// The hot path writes the same bytes without building objects.
const fast = encodeDatabaseTeraEvent(topic, event.header!.time, [created]);
console.log(`fast path identical: ${Buffer.from(fast).equals(Buffer.from(bytes))}`);

// 2. Receiving: decode (never throws), then unpack each Any by its type_url.
const decoded = decodeTeraEvent(bytes);
if (!decoded.ok) throw decoded.error;
for (const any of decoded.message.events) {
  const unpacked = unpackAny(any);
  switch (unpacked.type) {
    case "DatabaseEvent":
      console.log(`${DatabaseEvent_EventType[unpacked.message.type]} ${unpacked.message.objectType} ${unpacked.message.objectValue}`);
      break;
    case "unknown":
      console.log(`not an OpenTera type: ${unpacked.typeUrl}`);
      break;
    case "invalid":
      console.log(`bad ${unpacked.typeUrl}: ${unpacked.error.message}`);
      break;
    default:
      console.log(`other OpenTera message: ${unpacked.type}`);
  }
}

// 3. Garbage gives a typed error, not an exception.
const broken = decodeTeraEvent(bytes.subarray(0, bytes.length - 5));
console.log(broken.ok ? "unexpected success" : `refused: ${broken.error.kind}`);

// 4. The two other wrappers.
const log: LogEvent = { $type: LogEvent.$type, level: LogEvent_LogLevel.LOGLEVEL_INFO, timestamp: 1712318400.25, sender: "tera-cdc", message: "started" };
console.log(`TeraMessage carries ${teraMessage(log).message?.typeUrl}`);
const rpc: RPCMessage = {
  $type: RPCMessage.$type,
  method: "status",
  replyTo: "module.tera-cdc.rpc.reply.1",
  id: 1n,
  timestamp: 1712318400.25,
  args: [{ $type: "opentera.protobuf.Value", argValue: { $case: "stringValue", stringValue: "device" } }],
};
const moduleMessage = teraModuleMessage({ seq: 1, source: "module.tera-cdc", dest: "module.TeraServer", time: 1712318400.25, data: [rpc] });
console.log(`TeraModuleMessage seq ${moduleMessage.head?.seq} carries ${moduleMessage.data[0]?.typeUrl}`);
