#!/usr/bin/env python3
"""Checks bytes produced by tera-cdc's TypeScript encoder with Google's own protobuf runtimes.

Usage: check-encodings.py CASES_JSON
CASES_JSON: {"cases": [{"case": str, "message": OpenTera message name, "file": path of the bytes
(relative to CASES_JSON), "json": the expected values in proto3 canonical JSON}]}.
For each case:
  1. python3-protobuf (C++-backed) parses the bytes strictly (invalid UTF-8 fails) and the result
     must equal the message built from the JSON description (Any values compared by their bytes);
  2. re-serializing that message must give exactly the same bytes (field order, varint forms,
     defaults left out);
  3. protoc --decode must read them (as text), and protoc --encode of that text must give back the
     same bytes: a second reading, by protoc's C++ runtime.
Prints one line per failure and a summary; exits 1 if anything failed.
"""

import json
import os
import subprocess
import sys
import tempfile

sys.dont_write_bytecode = True  # keep __pycache__ out of the checkout
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import opentera_pb  # noqa: E402
from google.protobuf import json_format  # noqa: E402


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: check-encodings.py CASES_JSON")
    cases_path = os.path.abspath(sys.argv[1])
    with open(cases_path, encoding="utf-8") as source:
        cases = json.load(source)["cases"]
    classes = opentera_pb.load_modules()
    work_dir = tempfile.mkdtemp(prefix="opentera-protoc-")
    protoc = opentera_pb.protoc_args(work_dir)
    failures = []
    for case in cases:
        label = case["case"]
        message_class = classes[case["message"]]
        with open(os.path.join(os.path.dirname(cases_path), case["file"]), "rb") as source:
            data = source.read()
        try:
            expected = json_format.ParseDict(case["json"], message_class())
            actual = message_class.FromString(data)
        except Exception as error:  # noqa: BLE001 - every failure is reported, not raised
            failures.append(f"{label}: python3-protobuf cannot read it: {error}")
            continue
        if actual != expected:
            failures.append(f"{label}: decoded values differ: got {actual!r}, expected {expected!r}")
            continue
        if actual.SerializeToString(deterministic=True) != data:
            failures.append(f"{label}: python3-protobuf re-encodes it differently: {actual.SerializeToString().hex()} vs {data.hex()}")
            continue
        full_name = message_class.DESCRIPTOR.full_name
        proto_file = message_class.DESCRIPTOR.file.name
        decoded = subprocess.run(protoc + [f"--decode={full_name}", proto_file], input=data, capture_output=True)
        if decoded.returncode != 0:
            failures.append(f"{label}: protoc --decode failed: {decoded.stderr.decode(errors='replace').strip()}")
            continue
        encoded = subprocess.run(protoc + [f"--encode={full_name}", proto_file], input=decoded.stdout, capture_output=True)
        if encoded.returncode != 0 or encoded.stdout != data:
            failures.append(f"{label}: protoc --decode | protoc --encode does not give the same bytes back")
    for failure in failures:
        print(f"FAIL {failure}")
    print(json.dumps({"checked": len(cases), "failed": len(failures)}))
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
