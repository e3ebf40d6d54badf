"""Call every RPC that can return target strings, and keep what came back.

Used by the canary family: each entry is the RPC's name and the bytes of its
responses (or of its error: the status details are searched too).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import grpc

from protos import (
    common_pb2,
    events_pb2,
    files_pb2,
    info_pb2,
    logs_pb2,
    network_pb2,
    processes_pb2,
)
from tests.reliability._pod import LOG_PATH, SECRET_DIR, App
from tui.client import Client

SECRET_FILE = f"/{SECRET_DIR}/password"


def _grab(fn: Callable[[], Any]) -> tuple[str, bytes]:
    """Run one call; return (code name, every byte the client got, details included)."""
    try:
        out = fn()
        msgs = out if isinstance(out, list) else [out]
        return "OK", b"".join(m.SerializeToString() + str(m).encode() for m in msgs)
    except grpc.RpcError as e:
        return e.code().name, (e.details() or "").encode()  # type: ignore[attr-defined]


def _stream(call: Iterable[Any], n: int) -> list[Any]:
    out = []
    for msg in call:
        out.append(msg)
        if len(out) >= n:
            call.cancel()  # type: ignore[attr-defined]
            break
    return out


def walk(c: Client, app: App) -> dict[str, tuple[str, bytes]]:
    """Every string-returning RPC, aimed at the app and its secret; name -> (code, bytes)."""
    md, t = c.metadata, 10
    sel = common_pb2.ContainerSelector(id=app.container_id)
    ref = common_pb2.ProcessRef(pid=app.pid)
    f, p, lg, ev, n, i = c.files, c.processes, c.logs, c.events, c.network, c.info
    calls: dict[str, Callable[[], Any]] = {
        "GetInfo": lambda: i.GetInfo(info_pb2.GetInfoRequest(), metadata=md, timeout=t),
        "ListContainers": lambda: i.ListContainers(
            info_pb2.ListContainersRequest(include_sidecar=True, include_infra=True),
            metadata=md, timeout=t,
        ),
        "ListProcesses": lambda: p.ListProcesses(
            processes_pb2.ListProcessesRequest(), metadata=md, timeout=t
        ),
        "ListProcesses(app)": lambda: p.ListProcesses(
            processes_pb2.ListProcessesRequest(container=sel), metadata=md, timeout=t
        ),
        "GetProcess(all sections)": lambda: p.GetProcess(
            processes_pb2.GetProcessRequest(ref=ref), metadata=md, timeout=t
        ),
        "WatchProcess": lambda: _stream(
            p.WatchProcess(
                processes_pb2.WatchProcessRequest(ref=ref, interval_ms=250, max_samples=1),
                metadata=md, timeout=t,
            ), 1,
        ),
        "ListDir(/)": lambda: f.ListDir(
            files_pb2.ListDirRequest(container=sel, path="/"), metadata=md, timeout=t
        ),
        "ListDir(secret dir)": lambda: f.ListDir(
            files_pb2.ListDirRequest(container=sel, path=f"/{SECRET_DIR}"), metadata=md, timeout=t
        ),
        "Stat(secret)": lambda: f.Stat(
            files_pb2.StatRequest(container=sel, path=SECRET_FILE), metadata=md, timeout=t
        ),
        "ReadFile(secret)": lambda: f.ReadFile(
            files_pb2.ReadFileRequest(container=sel, path=SECRET_FILE), metadata=md, timeout=t
        ),
        "Download(secret)": lambda: list(
            f.Download(
                files_pb2.DownloadRequest(container=sel, path=SECRET_FILE), metadata=md, timeout=t
            )
        ),
        "FollowFile(secret)": lambda: _stream(
            f.FollowFile(
                files_pb2.FollowFileRequest(container=sel, path=SECRET_FILE, tail_bytes=4096),
                metadata=md, timeout=3,
            ), 1,
        ),
        "HashFile(secret)": lambda: f.HashFile(
            files_pb2.HashFileRequest(container=sel, path=SECRET_FILE), metadata=md, timeout=t
        ),
        "Find(/)": lambda: f.Find(
            files_pb2.FindRequest(container=sel, path="/", max_results=1000), metadata=md, timeout=t
        ),
        "ListMounts": lambda: f.ListMounts(
            files_pb2.ListMountsRequest(container=sel), metadata=md, timeout=t
        ),
        "DiskUsage(/)": lambda: f.DiskUsage(
            files_pb2.DiskUsageRequest(container=sel, path="/"), metadata=md, timeout=t
        ),
        "ReadFile(/proc/self/environ)": lambda: f.ReadFile(
            files_pb2.ReadFileRequest(container=sel, path="/proc/self/environ"),
            metadata=md, timeout=t,
        ),
        "ReadFile(/proc/1/cmdline)": lambda: f.ReadFile(
            files_pb2.ReadFileRequest(container=sel, path="/proc/1/cmdline"),
            metadata=md, timeout=t,
        ),
        "ReadFile(app log)": lambda: f.ReadFile(
            files_pb2.ReadFileRequest(container=sel, path=LOG_PATH), metadata=md, timeout=t
        ),
        "ListSources": lambda: lg.ListSources(
            logs_pb2.ListSourcesRequest(), metadata=md, timeout=t
        ),
        "FollowLogs": lambda: list(
            lg.FollowLogs(
                logs_pb2.FollowLogsRequest(start_at=logs_pb2.START_AT_BEGINNING, follow=False),
                metadata=md, timeout=t,
            )
        ),
        "FollowEvents": lambda: list(
            ev.FollowEvents(events_pb2.FollowEventsRequest(follow=False), metadata=md, timeout=t)
        ),
        "GetSamples": lambda: ev.GetSamples(
            events_pb2.GetSamplesRequest(), metadata=md, timeout=t
        ),
        "ListSockets": lambda: n.ListSockets(
            network_pb2.ListSocketsRequest(), metadata=md, timeout=t
        ),
        "SummarizeSockets": lambda: n.SummarizeSockets(
            network_pb2.SummarizeSocketsRequest(), metadata=md, timeout=t
        ),
        "ListInterfaces": lambda: n.ListInterfaces(
            network_pb2.ListInterfacesRequest(), metadata=md, timeout=t
        ),
        "ListRoutes": lambda: n.ListRoutes(network_pb2.ListRoutesRequest(), metadata=md, timeout=t),
        "GetDnsConfig": lambda: n.GetDnsConfig(
            network_pb2.GetDnsConfigRequest(container=sel), metadata=md, timeout=t
        ),
        "GetCounters": lambda: n.GetCounters(
            network_pb2.GetCountersRequest(), metadata=md, timeout=t
        ),
    }  # fmt: skip
    return {name: _grab(fn) for name, fn in calls.items()}
