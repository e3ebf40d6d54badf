"""Processes service conversions: agent results -> protobuf.

``process()`` runs once per process per listing (1,000+ times), so it passes
every field in one constructor call: upb builds a message from keyword
arguments faster than from attribute assignments.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import agent
from agent.results.net import Socket
from agent.results.proc import (
    CgroupStats,
    EnvVar,
    Limit,
    OpenFile,
    ProcessDetail,
    ProcessInfo,
    ProcessList,
    ProcessSample,
    SignalResult,
    ThreadInfo,
)
from protos import common_pb2, network_pb2, processes_pb2
from sidecar.convert import network
from sidecar.convert.common import timestamp, unavailable

_Process = processes_pb2.Process
_Ref = common_pb2.ProcessRef
_Unavailable = common_pb2.Unavailable

SORTS = {
    processes_pb2.PROCESS_SORT_PID: "pid",
    processes_pb2.PROCESS_SORT_CPU: "cpu",
    processes_pb2.PROCESS_SORT_RSS: "rss",
    processes_pb2.PROCESS_SORT_FDS: "fds",
    processes_pb2.PROCESS_SORT_THREADS: "threads",
}


def process(p: ProcessInfo) -> processes_pb2.Process:
    """One process (the listing's hot path)."""
    kw: dict[str, Any] = {
        "ref": _Ref(pid=p.ref.pid, start_ticks=p.ref.start_ticks),
        "ppid": p.ppid,
        "user": p.user,
        "uid": p.uid,
        "state": p.state,
        "start_time": timestamp(p.start_time),
        "threads": p.threads,
        "cmdline": p.cmdline,
        "name": p.name,
        "nice": p.nice,
        "container_id": p.container_id,
        "cpu_user_seconds": p.cpu_user,
        "cpu_system_seconds": p.cpu_system,
        "vms_bytes": p.vms,
    }
    if p.cpu_percent is not None:
        kw["cpu_percent"] = p.cpu_percent
    if p.rss is not None:
        kw["rss_bytes"] = p.rss
    if p.fds is not None:
        kw["fds"] = p.fds
    if p.pss is not None:
        kw["pss_bytes"] = p.pss
    if p.exe is not None:
        kw["exe"] = p.exe
    if p.cwd is not None:
        kw["cwd"] = p.cwd
    if p.io is not None:
        io = p.io
        kw["io"] = processes_pb2.IoCounters(
            read_bytes=io.read_bytes,
            write_bytes=io.write_bytes,
            read_chars=io.read_chars,
            write_chars=io.write_chars,
            syscalls_read=io.syscalls_read,
            syscalls_write=io.syscalls_write,
        )
    if p.ctx_voluntary is not None:
        kw["ctx_switches_voluntary"] = p.ctx_voluntary
    if p.ctx_involuntary is not None:
        kw["ctx_switches_involuntary"] = p.ctx_involuntary
    if p.unavailable:
        kw["unavailable"] = [_Unavailable(field=u.field, reason=u.reason) for u in p.unavailable]
    return _Process(**kw)


def process_list(result: ProcessList, budget: int) -> processes_pb2.ListProcessesResponse:
    """A listing page of at most ``budget`` bytes.

    Long command lines (up to 64 KiB each) could push a big page past the
    gRPC message limit: the page then ends early, says ``truncated``, and
    the token continues right after the last process sent.
    """
    out: list[processes_pb2.Process] = []
    size = 0
    sent = 0
    for p in result.processes:
        msg = process(p)
        size += msg.ByteSize() + 4  # + field tag and length prefix
        if size > budget and out:
            break
        out.append(msg)
        sent += 1
    cut = sent < len(result.processes)
    return processes_pb2.ListProcessesResponse(
        processes=out,
        page=common_pb2.PageInfo(
            next_page_token=result.token_after(sent),
            truncated=result.truncated or cut,
            total=result.total,
        ),
        sampled_at=timestamp(result.sampled_at),
    )


def env_var(e: EnvVar) -> processes_pb2.EnvVar:
    return processes_pb2.EnvVar(name=e.name, value=e.value, redacted=e.redacted)


def limit(lim: Limit) -> processes_pb2.Limit:
    return processes_pb2.Limit(name=lim.name, soft=lim.soft, hard=lim.hard, units=lim.units)


def cgroup(c: CgroupStats) -> processes_pb2.CgroupStats:
    kw: dict[str, Any] = {}
    for name, key in (
        ("memory_limit", "memory_limit_bytes"),
        ("memory_usage", "memory_usage_bytes"),
        ("memory_peak", "memory_peak_bytes"),
        ("oom_kills", "oom_kills"),
        ("oom_events", "oom_events"),
        ("cpu_quota_us", "cpu_quota_us"),
        ("cpu_period_us", "cpu_period_us"),
        ("nr_periods", "nr_periods"),
        ("nr_throttled", "nr_throttled"),
        ("throttled_usec", "throttled_usec"),
        ("pids_current", "pids_current"),
        ("pids_max", "pids_max"),
    ):
        value = getattr(c, name)
        if value is not None:
            kw[key] = value
    return processes_pb2.CgroupStats(
        version=c.version, path=c.path, unavailable=unavailable(c.unavailable), **kw
    )


def open_file(f: OpenFile) -> processes_pb2.OpenFile:
    return processes_pb2.OpenFile(
        fd=f.fd, path=f.path, flags=f.flags, position=f.position, type=f.type
    )


def thread(t: ThreadInfo) -> processes_pb2.Thread:
    kw: dict[str, Any] = {}
    if t.cpu_percent is not None:
        kw["cpu_percent"] = t.cpu_percent
    return processes_pb2.Thread(
        tid=t.tid,
        name=t.name,
        state=t.state,
        cpu_user_seconds=t.cpu_user,
        cpu_system_seconds=t.cpu_system,
        **kw,
    )


def sockets(items: Iterable[Socket]) -> list[network_pb2.Socket]:
    """Socket results of the network reader, converted the Network service's way."""
    holder = network_pb2.ListSocketsResponse()
    network.sockets(items, holder)
    return list(holder.sockets)


def detail(d: ProcessDetail) -> processes_pb2.ProcessDetail:
    return processes_pb2.ProcessDetail(
        process=process(d.process),
        env=[env_var(e) for e in d.env],
        limits=[limit(x) for x in d.limits],
        cgroup=cgroup(d.cgroup) if d.cgroup is not None else None,
        open_files=[open_file(f) for f in d.open_files],
        threads=[thread(t) for t in d.threads],
        sockets=sockets(d.sockets),
        unavailable=unavailable(d.unavailable),
        children=d.children,
    )


def signal_result(r: SignalResult) -> processes_pb2.SignalProcessResponse:
    return processes_pb2.SignalProcessResponse(delivered=r.delivered, method=r.method)


def sample(s: ProcessSample) -> processes_pb2.ProcessSample:
    kw: dict[str, Any] = {}
    if s.cpu_percent is not None:
        kw["cpu_percent"] = s.cpu_percent
    if s.rss is not None:
        kw["rss_bytes"] = s.rss
    if s.fds is not None:
        kw["fds"] = s.fds
    return processes_pb2.ProcessSample(time=timestamp(s.time), threads=s.threads, **kw)


def ref(r: common_pb2.ProcessRef) -> agent.ProcessRef:
    """Request ref -> agent ref."""
    return agent.ProcessRef(r.pid, r.start_ticks)
