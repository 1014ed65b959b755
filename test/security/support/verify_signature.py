#!/usr/bin/env python3
"""An independent verifier of tera-cdc's stream signature, written from docs/security.md only
(Python's hmac and hashlib; no code shared with src/). Reads JSON Lines on stdin, one message each:
{"key_file": PATH, "topic": STR, "payload_b64": STR, "properties": [[NAME, VALUE], ...]}
and prints one line per message: "valid", "unsigned" or "invalid <why>"."""
import base64
import hashlib
import hmac
import json
import struct
import sys


def read_key(path):
    with open(path, "rb") as f:
        data = f.read()
    if data.endswith(b"\n"):
        data = data[:-1]
    if data.endswith(b"\r"):
        data = data[:-1]
    return data


def field(b):
    return struct.pack(">I", len(b)) + b


def verdict(message):
    key = read_key(message["key_file"])
    props = message["properties"]
    names = [name for name, _ in props]
    if "sig" not in names:
        return "unsigned"
    if len(set(names)) != len(names):
        return "invalid repeated property"
    given = dict(props)["sig"]
    rest = sorted(((n.encode("utf-8"), v.encode("utf-8")) for n, v in props if n != "sig"), key=lambda p: p[0])
    data = field(b"tera-cdc-sig-v1") + field(message["topic"].encode("utf-8")) + field(base64.b64decode(message["payload_b64"]))
    data += struct.pack(">I", len(rest))
    for name, value in rest:
        data += field(name) + field(value)
    expected = hmac.new(key, data, hashlib.sha256).hexdigest()
    return "valid" if hmac.compare_digest(expected, given) else "invalid mismatch"


for line in sys.stdin:
    if line.strip():
        print(verdict(json.loads(line)), flush=True)
