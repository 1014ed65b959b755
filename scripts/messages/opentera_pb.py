"""Compile proto/*.proto with Google's protoc and load them into Google's Python runtime.

Shared by make-fixtures.py and check-encodings.py. Needs the Debian packages protobuf-compiler and
python3-protobuf (`apt-get install -y protobuf-compiler python3-protobuf`). any.proto is handed to
protoc as a descriptor set taken from the Python runtime itself, so libprotobuf-dev (which ships
/usr/include/google/protobuf/any.proto) is not required.
"""

import importlib
import os
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
PROTO_DIR = os.path.join(ROOT, "proto")
INSTALL_HINT = "run `apt-get install -y protobuf-compiler python3-protobuf`"

try:
    from google.protobuf import any_pb2, descriptor_pb2, json_format  # noqa: F401
except ImportError as error:  # pragma: no cover - environment problem, reported clearly
    sys.exit(f"google.protobuf is not importable by {sys.executable} ({error}); {INSTALL_HINT}")

MESSAGE_FILES = {
    "TeraMessage": "TeraMessage",
    "TeraEvent": "TeraEvent",
    "TeraModuleMessage": "TeraModuleMessage",
    "DatabaseEvent": "DatabaseEvent",
    "DeviceEvent": "DeviceEvent",
    "ParticipantEvent": "ParticipantEvent",
    "UserEvent": "UserEvent",
    "JoinSessionEvent": "JoinSessionEvent",
    "JoinSessionReplyEvent": "JoinSessionReplyEvent",
    "LeaveSessionEvent": "LeaveSessionEvent",
    "StopSessionEvent": "StopSessionEvent",
    "LogEvent": "LogEvent",
    "LoginEvent": "LoginEvent",
    "RPCMessage": "RPCMessage",
    "Value": "RPCMessage",  # Value is declared in RPCMessage.proto, as in OpenTera
}


def protoc_path():
    path = shutil.which("protoc")
    if path is None:
        sys.exit(f"protoc not found on PATH; {INSTALL_HINT}")
    return path


def well_known_descriptor_set(directory):
    """A FileDescriptorSet holding google/protobuf/any.proto, for protoc's --descriptor_set_in."""
    file_set = descriptor_pb2.FileDescriptorSet()
    any_pb2.DESCRIPTOR.CopyToProto(file_set.file.add())
    path = os.path.join(directory, "well_known.binpb")
    with open(path, "wb") as out:
        out.write(file_set.SerializeToString())
    return path


def protoc_args(directory):
    return [protoc_path(), f"--proto_path={PROTO_DIR}", f"--descriptor_set_in={well_known_descriptor_set(directory)}"]


def proto_files():
    return sorted(name for name in os.listdir(PROTO_DIR) if name.endswith(".proto"))


def load_modules():
    """Returns {message name: Python message class}, compiled fresh from proto/ by protoc."""
    out_dir = tempfile.mkdtemp(prefix="opentera-pb-")
    subprocess.run(protoc_args(out_dir) + [f"--python_out={out_dir}"] + proto_files(), check=True)
    sys.path.insert(0, out_dir)
    classes = {}
    for message, file_stem in MESSAGE_FILES.items():
        module = importlib.import_module(f"{file_stem}_pb2")
        classes[message] = getattr(module, message)
    return classes
