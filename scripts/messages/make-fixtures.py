#!/usr/bin/env python3
"""Writes the wire-compatibility fixtures in test/fixtures/messages/ with Google's own runtime.

For every OpenTera message, one or more fully populated instances (every field set, repeated fields
with several entries, every oneof case of Value, non-ASCII strings, large uint64, negative int64)
are serialized by python3-protobuf from proto/ compiled by protoc. Each case is written as
<case>.bin, and cases.json describes the values in proto3 canonical JSON (proto field names,
64-bit integers as strings, bytes as base64, Any as {"@type": ..., fields}).
Run: /usr/bin/python3 scripts/messages/make-fixtures.py   (output is deterministic)
"""

import json
import os
import sys

sys.dont_write_bytecode = True  # keep __pycache__ out of the checkout
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import opentera_pb  # noqa: E402
from google.protobuf import any_pb2, json_format  # noqa: E402

FIXTURE_DIR = os.path.join(opentera_pb.ROOT, "test", "fixtures", "messages")

M = opentera_pb.load_modules()


def packed(message):
    any_message = any_pb2.Any()
    any_message.Pack(message, deterministic=True)  # type_url type.googleapis.com/opentera.protobuf.<Name>
    return any_message


def database_event():
    return M["DatabaseEvent"](
        type=M["DatabaseEvent"].DB_UPDATE,
        object_type="device",
        object_value='{"id_device": 7, "device_name": "Capteur d\'été ☃ 🚀", "device_enabled": true}',
    )


def device_event():
    return M["DeviceEvent"](
        device_uuid="9f1c2c1e-8a4b-4a57-b1f4-2f0a6c9b7e11",
        type=M["DeviceEvent"].DEVICE_STATUS_CHANGED,
        device_name="Tablette salle 3 — Montréal",
        device_status='{"battery": 87.5, "état": "occupé"}',
    )


def participant_event():
    return M["ParticipantEvent"](
        participant_uuid="0b6f4e9a-2d1c-4a5e-9c3b-7e8f1a2b3c4d",
        type=M["ParticipantEvent"].PARTICIPANT_JOINED_SESSION,
        participant_name="Zoë Ångström",
        participant_project_name="Projet Réadaptation",
        participant_site_name="Sherbrooke — CHUS",
    )


def user_event():
    return M["UserEvent"](
        user_uuid="5d3c2b1a-0f9e-4d8c-b7a6-958473625140",
        type=M["UserEvent"].USER_LEFT_SESSION,
        user_fullname="Jean-François Côté 日本",
    )


def join_session_event():
    return M["JoinSessionEvent"](
        session_url="https://telesante.example.org/session/αβγ?id=42",
        session_creator_name="Dr. Émilie Tremblay",
        session_uuid="c0ffee00-1234-4abc-8def-001122334455",
        session_participants=["p-uuid-1", "p-uuid-2 ünïcode", "p-uuid-3"],
        session_users=["u-uuid-1", "u-uuid-2"],
        session_devices=["d-uuid-1", "d-uuid-2", "d-uuid-3", "d-uuid-4"],
        join_msg="Bienvenue à la séance 👋",
        session_parameters='{"camera": "front", "résolution": [1280, 720]}',
        service_uuid="00000000-0000-4000-8000-00000000000a",
    )


def join_session_reply_event():
    return M["JoinSessionReplyEvent"](
        session_uuid="c0ffee00-1234-4abc-8def-001122334455",
        user_uuid="5d3c2b1a-0f9e-4d8c-b7a6-958473625140",
        participant_uuid="0b6f4e9a-2d1c-4a5e-9c3b-7e8f1a2b3c4d",
        device_uuid="9f1c2c1e-8a4b-4a57-b1f4-2f0a6c9b7e11",
        join_reply=M["JoinSessionReplyEvent"].REPLY_TIMEOUT,
        reply_msg="Pas de réponse ⏱",
    )


def leave_session_event():
    return M["LeaveSessionEvent"](
        session_uuid="c0ffee00-1234-4abc-8def-001122334455",
        service_uuid="00000000-0000-4000-8000-00000000000a",
        leaving_participants=["p-uuid-1", "p-uuid-2 ünïcode"],
        leaving_users=["u-uuid-1", "u-uuid-2", "u-uuid-3"],
        leaving_devices=["d-uuid-1", "d-uuid-2"],
    )


def stop_session_event():
    return M["StopSessionEvent"](
        session_uuid="c0ffee00-1234-4abc-8def-001122334455",
        service_uuid="00000000-0000-4000-8000-00000000000a",
    )


def log_event():
    return M["LogEvent"](
        level=M["LogEvent"].LOGLEVEL_CRITICAL,
        timestamp=1712345678.123456,
        sender="TeraServer.LoginModule",
        message="Échec de connexion: mot de passe invalide ✗",
    )


def login_event():
    return M["LoginEvent"](
        log_header=log_event(),
        login_type=M["LoginEvent"].LOGIN_TYPE_CERTIFICATE,
        login_status=M["LoginEvent"].LOGIN_STATUS_FAILED_WITH_EXPIRED_TOKEN,
        client_name="OpenTeraPlus",
        client_version="1.2.3-β",
        client_ip="2001:db8::1",
        os_name="Windows",
        os_version="11 (22H2)",
        user_uuid="5d3c2b1a-0f9e-4d8c-b7a6-958473625140",
        participant_uuid="0b6f4e9a-2d1c-4a5e-9c3b-7e8f1a2b3c4d",
        device_uuid="9f1c2c1e-8a4b-4a57-b1f4-2f0a6c9b7e11",
        service_uuid="00000000-0000-4000-8000-00000000000a",
        server_endpoint="wss://tera.example.org:40075/api/user/login",
    )


def values():
    """One Value per oneof case, some at their limits or at the default (a set oneof is still sent)."""
    V = M["Value"]
    return [
        ("double", V(double_value=-2.718281828459045e-300)),
        ("double-zero", V(double_value=0.0)),
        ("float", V(float_value=-0.15625)),
        ("float-tiny", V(float_value=1.1754943508222875e-38)),  # smallest normal float32
        ("int", V(int_value=-9223372036854775808)),
        ("int-small-negative", V(int_value=-42)),
        ("uint", V(uint_value=18446744073709551615)),
        ("bool", V(bool_value=True)),
        ("bool-false", V(bool_value=False)),
        ("bytes", V(bytes_value=bytes([0, 1, 2, 127, 128, 200, 255]))),
        ("string", V(string_value="chaîne ✓ 文字 🚀")),
    ]


def rpc_message():
    return M["RPCMessage"](
        method="session_manage",
        reply_to="module.TeraServer.rpc.reply.4f7d0c1e",
        id=18446744073709551614,
        timestamp=1712345678.5,
        args=[value for _, value in values()],
    )


def tera_event():
    header = M["TeraEvent"].Header(
        version=1,
        time=1712345678.987654,
        topic="module.TeraServer.DatabaseModule.events.device",
    )
    return M["TeraEvent"](
        header=header,
        events=[packed(database_event()), packed(device_event()), packed(user_event())],
    )


def tera_module_message():
    head = M["TeraModuleMessage"].Header(
        version=1, time=1712345679.25, seq=4294967295, source="module.TeraServer", dest="service.VideoRehabService"
    )
    return M["TeraModuleMessage"](head=head, data=[packed(rpc_message()), packed(log_event())])


def tera_message():
    return M["TeraMessage"](message=packed(login_event()))


def cases():
    result = [
        ("TeraMessage", "TeraMessage", tera_message()),
        ("TeraEvent", "TeraEvent", tera_event()),
        ("TeraModuleMessage", "TeraModuleMessage", tera_module_message()),
        ("DatabaseEvent", "DatabaseEvent", database_event()),
        ("DeviceEvent", "DeviceEvent", device_event()),
        ("ParticipantEvent", "ParticipantEvent", participant_event()),
        ("UserEvent", "UserEvent", user_event()),
        ("JoinSessionEvent", "JoinSessionEvent", join_session_event()),
        ("JoinSessionReplyEvent", "JoinSessionReplyEvent", join_session_reply_event()),
        ("LeaveSessionEvent", "LeaveSessionEvent", leave_session_event()),
        ("StopSessionEvent", "StopSessionEvent", stop_session_event()),
        ("LogEvent", "LogEvent", log_event()),
        ("LoginEvent", "LoginEvent", login_event()),
        ("RPCMessage", "RPCMessage", rpc_message()),
    ]
    result += [(f"Value-{label}", "Value", value) for label, value in values()]
    return result


def main():
    os.makedirs(FIXTURE_DIR, exist_ok=True)
    description = []
    for case, message_name, message in cases():
        data = message.SerializeToString(deterministic=True)
        with open(os.path.join(FIXTURE_DIR, f"{case}.bin"), "wb") as out:
            out.write(data)
        description.append(
            {
                "case": case,
                "message": message_name,
                "file": f"{case}.bin",
                "json": json_format.MessageToDict(message, preserving_proto_field_name=True),
            }
        )
    with open(os.path.join(FIXTURE_DIR, "cases.json"), "w", encoding="utf-8") as out:
        json.dump(
            {
                "generator": "scripts/messages/make-fixtures.py (protoc + python3-protobuf, "
                + f"google.protobuf {__import__('google.protobuf').protobuf.__version__})",
                "cases": description,
            },
            out,
            ensure_ascii=False,
            indent=2,
        )
        out.write("\n")
    print(f"wrote {len(description)} fixtures to {os.path.relpath(FIXTURE_DIR, opentera_pb.ROOT)}")


if __name__ == "__main__":
    main()
