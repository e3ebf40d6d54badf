"""One load-generating process: N client threads, each with its own channel, looping over
the mix for a duration; prints one JSON object: latencies per RPC and errors.

``python -m tests.reliability._loadclient ADDRESS TOKEN CONTAINER THREADS SECONDS SEED``.
Several of these run side by side so client-side work (protobuf, the GIL) does not
dominate the latencies measured.
"""

from __future__ import annotations

import json
import random
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import grpc

from protos import common_pb2, files_pb2, info_pb2, logs_pb2, processes_pb2
from tui.client import Client, Target

MIX = {
    "ListProcesses": 3, "ListDir": 3, "Stat": 2, "ReadFile": 2,
    "Download": 2, "FollowLogs": 2, "GetInfo": 1,
}  # fmt: skip


def calls(c: Client, container: str) -> dict[str, Callable[[], Any]]:
    md, t = c.metadata, 30
    sel = common_pb2.ContainerSelector(id=container)

    def follow() -> None:
        req = logs_pb2.FollowLogsRequest(container=sel, start_at=logs_pb2.START_AT_END, follow=True)
        call = c.logs.FollowLogs(req, metadata=md, timeout=t)
        got = 0
        for batch in call:
            got += len(batch.records)
            if got >= 3:
                call.cancel()
                return

    return {
        "ListProcesses": lambda: c.processes.ListProcesses(
            processes_pb2.ListProcessesRequest(container=sel), metadata=md, timeout=t),
        "ListDir": lambda: c.files.ListDir(
            files_pb2.ListDirRequest(container=sel, path="/srv/data"), metadata=md, timeout=t),
        "Stat": lambda: c.files.Stat(
            files_pb2.StatRequest(container=sel, path="/etc/hostname"), metadata=md, timeout=t),
        "ReadFile": lambda: c.files.ReadFile(
            files_pb2.ReadFileRequest(container=sel, path="/srv/data/readme.txt"),
            metadata=md, timeout=t),
        "Download": lambda: sum(len(ch.data) for ch in c.files.Download(
            files_pb2.DownloadRequest(container=sel, path="/srv/data/blob.bin"),
            metadata=md, timeout=t)),
        "FollowLogs": follow,
        "GetInfo": lambda: c.info.GetInfo(info_pb2.GetInfoRequest(), metadata=md, timeout=t),
    }  # fmt: skip


def main() -> int:
    address, token, container = sys.argv[1], sys.argv[2], sys.argv[3]
    threads, seconds, seed = int(sys.argv[4]), float(sys.argv[5]), int(sys.argv[6])
    lat: dict[str, list[float]] = defaultdict(list)
    errors: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(threads)

    def client(i: int) -> None:
        rnd = random.Random(seed * 1000 + i)
        with Client(Target(address, token)) as c:
            c.wait_ready(30)
            fns = calls(c, container)
            names, weights = list(MIX), list(MIX.values())
            start.wait()
            stop_at = time.monotonic() + seconds
            while time.monotonic() < stop_at:
                name = rnd.choices(names, weights)[0]
                t0 = time.perf_counter()
                try:
                    fns[name]()
                except grpc.RpcError as e:
                    with lock:
                        errors.append(f"{name}: {e.code().name}: {e.details()}")  # type: ignore[attr-defined]
                    continue
                with lock:
                    lat[name].append(time.perf_counter() - t0)

    ts = [threading.Thread(target=client, args=(i,)) for i in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    print(json.dumps({"lat": lat, "errors": errors}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
