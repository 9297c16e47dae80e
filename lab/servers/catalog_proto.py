"""What the weir lab's gRPC catalog server and client share: the protobuf and gRPC modules of
`catalog.proto`, generated at startup (nothing generated is committed), and a message as a dict.
"""

import importlib
import os
import sys
import tempfile

try:
    import grpc  # noqa: F401 (checked here for both scripts)
    from grpc_tools import protoc
except ImportError as e:
    sys.exit(
        "the lab's gRPC catalog needs grpcio and grpcio-tools (%s); scripts/deps.sh installs them: "
        "python3 -m pip install 'grpcio==1.85.*' 'grpcio-tools==1.85.*'" % e
    )


def load_modules(proto):
    """Generates `<stem>_pb2` and `<stem>_pb2_grpc` from `proto` into a temporary directory and
    imports them."""
    proto = os.path.abspath(proto)
    stem = os.path.splitext(os.path.basename(proto))[0]
    with tempfile.TemporaryDirectory(prefix="weir-catalog-") as out:
        rc = protoc.main(
            [
                "grpc_tools.protoc",
                "-I" + os.path.dirname(proto),
                "--python_out=" + out,
                "--grpc_python_out=" + out,
                os.path.basename(proto),
            ]
        )
        if rc != 0:
            sys.exit("grpc_tools.protoc failed (%d) on %s" % (rc, proto))
        sys.path.insert(0, out)
        try:
            pb2 = importlib.import_module(stem + "_pb2")
            pb2_grpc = importlib.import_module(stem + "_pb2_grpc")
        finally:
            sys.path.remove(out)
    return pb2, pb2_grpc


def as_dict(message):
    """Every field of a message, proto3 defaults included, by its JSON name."""
    return {f.json_name: getattr(message, f.name) for f in message.DESCRIPTOR.fields}
