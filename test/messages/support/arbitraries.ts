/** fast-check generators of fully general OpenTera messages (every field, every oneof case). */
import fc from "fast-check";
import {
  type Any,
  DatabaseEvent,
  DeviceEvent,
  JoinSessionEvent,
  JoinSessionReplyEvent,
  type KnownMessage,
  type KnownMessageName,
  LeaveSessionEvent,
  LogEvent,
  LoginEvent,
  type MessageByName,
  packAny,
  ParticipantEvent,
  RPCMessage,
  StopSessionEvent,
  TeraEvent,
  TeraEvent_Header,
  TeraMessage,
  TeraModuleMessage,
  TeraModuleMessage_Header,
  UserEvent,
  Value,
} from "./imports.js";

export interface ArbitraryOptions {
  /** Python's message equality fails on NaN, so the cross-runtime check leaves it out. */
  readonly nan?: boolean;
}

// Any code point, surrogate pairs included, no lone surrogates (not valid UTF-8 on the wire).
const text = fc.string({ unit: "binary", maxLength: 40 });
const texts = fc.array(text, { maxLength: 5 });
const uint32 = fc.integer({ min: 0, max: 0xffff_ffff });
const int64 = fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n });
const uint64 = fc.bigInt({ min: 0n, max: 2n ** 64n - 1n });
// ts-proto leaves out -0 like 0 (it compares with !== 0), so -0 comes back as 0: see docs.
const noNegativeZero = (x: number): number => (Object.is(x, -0) ? 0 : x);
const double = (o: ArbitraryOptions) => fc.double({ noNaN: !o.nan }).map(noNegativeZero);
const float = (o: ArbitraryOptions) => fc.float({ noNaN: !o.nan }).map(noNegativeZero);

// The declared values only: ts-proto's toJSON writes other values as "UNRECOGNIZED".
function enumOf(values: readonly number[]): fc.Arbitrary<number> {
  return fc.constantFrom(...values);
}

const typed = <N extends KnownMessageName>(_name: N, arb: fc.Arbitrary<Omit<MessageByName[N], "$type">>, $type: string) =>
  arb.map((fields) => ({ $type, ...fields }) as MessageByName[N]);

function leafArbitraries(o: ArbitraryOptions) {
  const value = typed(
    "Value",
    fc.record({
      argValue: fc.oneof(
        fc.constant(undefined),
        double(o).map((doubleValue) => ({ $case: "doubleValue" as const, doubleValue })),
        float(o).map((floatValue) => ({ $case: "floatValue" as const, floatValue })),
        int64.map((intValue) => ({ $case: "intValue" as const, intValue })),
        uint64.map((uintValue) => ({ $case: "uintValue" as const, uintValue })),
        fc.boolean().map((boolValue) => ({ $case: "boolValue" as const, boolValue })),
        fc.uint8Array({ maxLength: 20 }).map((bytesValue) => ({ $case: "bytesValue" as const, bytesValue })),
        text.map((stringValue) => ({ $case: "stringValue" as const, stringValue })),
      ),
    }),
    Value.$type,
  );
  const logEvent = typed(
    "LogEvent",
    fc.record({ level: enumOf([0, 1, 2, 3, 4, 5, 6, 7]), timestamp: double(o), sender: text, message: text }),
    LogEvent.$type,
  );
  return {
    DatabaseEvent: typed(
      "DatabaseEvent",
      fc.record({ type: enumOf([0, 1, 2, 3]), objectType: text, objectValue: text }),
      DatabaseEvent.$type,
    ),
    DeviceEvent: typed(
      "DeviceEvent",
      fc.record({ deviceUuid: text, type: enumOf([0, 1, 2, 3, 4, 5, 6, 7]), deviceName: text, deviceStatus: text }),
      DeviceEvent.$type,
    ),
    ParticipantEvent: typed(
      "ParticipantEvent",
      fc.record({
        participantUuid: text,
        type: enumOf([0, 1, 2, 3, 4, 5, 6]),
        participantName: text,
        participantProjectName: text,
        participantSiteName: text,
      }),
      ParticipantEvent.$type,
    ),
    UserEvent: typed(
      "UserEvent",
      fc.record({ userUuid: text, type: enumOf([0, 1, 2, 3, 4, 5, 6, 7]), userFullname: text }),
      UserEvent.$type,
    ),
    JoinSessionEvent: typed(
      "JoinSessionEvent",
      fc.record({
        sessionUrl: text,
        sessionCreatorName: text,
        sessionUuid: text,
        sessionParticipants: texts,
        sessionUsers: texts,
        sessionDevices: texts,
        joinMsg: text,
        sessionParameters: text,
        serviceUuid: text,
      }),
      JoinSessionEvent.$type,
    ),
    JoinSessionReplyEvent: typed(
      "JoinSessionReplyEvent",
      fc.record({
        sessionUuid: text,
        userUuid: text,
        participantUuid: text,
        deviceUuid: text,
        joinReply: enumOf([0, 1, 2, 3, 4]),
        replyMsg: text,
      }),
      JoinSessionReplyEvent.$type,
    ),
    LeaveSessionEvent: typed(
      "LeaveSessionEvent",
      fc.record({ sessionUuid: text, serviceUuid: text, leavingParticipants: texts, leavingUsers: texts, leavingDevices: texts }),
      LeaveSessionEvent.$type,
    ),
    StopSessionEvent: typed("StopSessionEvent", fc.record({ sessionUuid: text, serviceUuid: text }), StopSessionEvent.$type),
    LogEvent: logEvent,
    LoginEvent: typed(
      "LoginEvent",
      fc.record({
        logHeader: fc.option(logEvent, { nil: undefined }),
        loginType: enumOf([0, 1, 2, 3]),
        loginStatus: enumOf([0, 1, 2, 3, 4, 5, 6, 7, 8]),
        clientName: text,
        clientVersion: text,
        clientIp: text,
        osName: text,
        osVersion: text,
        userUuid: text,
        participantUuid: text,
        deviceUuid: text,
        serviceUuid: text,
        serverEndpoint: text,
      }),
      LoginEvent.$type,
    ),
    RPCMessage: typed(
      "RPCMessage",
      fc.record({ method: text, replyTo: text, id: uint64, timestamp: double(o), args: fc.array(value, { maxLength: 8 }) }),
      RPCMessage.$type,
    ),
    Value: value,
  };
}

export function messageArbitraries(o: ArbitraryOptions = {}): { [N in KnownMessageName]: fc.Arbitrary<MessageByName[N]> } {
  const leaves = leafArbitraries(o);
  const anyLeaf: fc.Arbitrary<Any> = fc.oneof(...Object.values(leaves).map((a) => (a as fc.Arbitrary<KnownMessage>).map(packAny)));
  const anys = fc.array(anyLeaf, { maxLength: 4 });
  return {
    ...leaves,
    TeraEvent: fc
      .record({ version: uint32, time: double(o), topic: text, events: anys })
      .map(({ events, ...h }) => ({ $type: TeraEvent.$type, header: { $type: TeraEvent_Header.$type, ...h }, events })),
    TeraModuleMessage: fc
      .record({ version: uint32, time: double(o), seq: uint32, source: text, dest: text, data: anys })
      .map(({ data, ...h }) => ({ $type: TeraModuleMessage.$type, head: { $type: TeraModuleMessage_Header.$type, ...h }, data })),
    TeraMessage: anyLeaf.map((message) => ({ $type: TeraMessage.$type, message })),
  };
}
