"""Call every method of every borescope service with given credentials; print the codes.

Run as a separate process so it can be started inside the pod's namespaces as
the app's UID: ``python -m tests.reliability._authwalk ADDRESS MODE`` prints one
JSON object, ``{"Service/Method": "CODE", ...}``. MODE is ``none`` (no
metadata), ``wrong`` (a well-formed but wrong bearer token), ``garbage`` (a
malformed header) or ``empty`` (``Bearer`` with nothing after it).
"""

from __future__ import annotations

import json
import sys

import grpc

from protos import events_pb2, files_pb2, info_pb2, logs_pb2, network_pb2, processes_pb2

MODULES = (events_pb2, files_pb2, info_pb2, logs_pb2, network_pb2, processes_pb2)
MODES: dict[str, tuple[tuple[str, str], ...]] = {
    "none": (),
    "wrong": (("authorization", "Bearer wrong-token-0000000000000000000000"),),
    "garbage": (("authorization", "Basic dXNlcjpwYXNz"),),
    "empty": (("authorization", "Bearer "),),
}


def methods() -> list[tuple[str, bool]]:
    """(full method path, server streaming) for every method of every service."""
    return [
        (f"/{s.full_name}/{m.name}", m.server_streaming)
        for mod in MODULES
        for s in mod.DESCRIPTOR.services_by_name.values()
        for m in s.methods
    ]


def walk(channel: grpc.Channel, metadata: tuple[tuple[str, str], ...]) -> dict[str, str]:
    """Every method called once with an empty request; path -> status code name."""
    out = {}
    for path, streaming in methods():
        try:
            if streaming:
                for _ in channel.unary_stream(path)(b"", metadata=metadata, timeout=5):
                    break
            else:
                channel.unary_unary(path)(b"", metadata=metadata, timeout=5)
            out[path] = "OK"
        except grpc.RpcError as e:
            out[path] = e.code().name  # type: ignore[attr-defined]
    return out


def main() -> int:
    address, mode = sys.argv[1], sys.argv[2]
    with grpc.insecure_channel(address) as ch:
        print(json.dumps(walk(ch, MODES[mode])))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
