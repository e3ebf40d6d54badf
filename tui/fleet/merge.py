"""Combine the members' answers: top processes, remote endpoints, logs and events by time.

Pure functions over protobuf messages; every order has a stable tie-break
(the pod name, then the member's own order) so the same answers always print
the same way.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from protos import events_pb2, logs_pb2, network_pb2, processes_pb2
from tui.fleet.fanout import Answer

#: ps --sort key -> how to read it from a Process (None when unknown).
SORT_FIELDS = {
    "cpu": "cpu_percent",
    "rss": "rss_bytes",
    "mem": "rss_bytes",
    "fds": "fds",
    "threads": "threads",
}
_OPTIONAL = {"cpu_percent", "rss_bytes", "fds"}


def _value(p: processes_pb2.Process, name: str) -> float:
    if name in _OPTIONAL and not p.HasField(name):  # type: ignore[arg-type]
        return -1.0  # unknown sorts after every known value
    return float(getattr(p, name))


def top_processes(
    answers: Sequence[Answer[list[processes_pb2.Process]]], n: int, sort: str = "cpu"
) -> list[tuple[str, processes_pb2.Process]]:
    """The ``n`` processes with the largest ``sort`` value across pods, as (pod, process).

    Ties keep pod order, then pid; ``sort`` "pid" orders by pod then pid.
    """
    rows = ((a.member, p) for a in answers if a.value for p in a.value)
    if sort == "pid":
        return sorted(rows, key=lambda r: (r[0], r[1].ref.pid))[:n]
    name = SORT_FIELDS.get(sort, "cpu_percent")
    return heapq.nsmallest(n, rows, key=lambda r: (-_value(r[1], name), r[0], r[1].ref.pid))


@dataclass
class RemoteTotal:
    """Connections to one remote endpoint, summed over pods."""

    address: str
    port: int
    count: int = 0
    pods: set[str] = field(default_factory=set)
    states: dict[str, int] = field(default_factory=dict)


@dataclass
class SocketTotals:
    """The fleet's socket summary."""

    total: int = 0
    by_state: dict[str, int] = field(default_factory=dict)
    remotes: list[RemoteTotal] = field(default_factory=list)


def merge_socket_summaries(
    answers: Sequence[Answer[network_pb2.SocketSummary]], top: int
) -> SocketTotals:
    """Sum every pod's summary by remote endpoint; the ``top`` remotes by connections."""
    out = SocketTotals()
    remotes: dict[tuple[str, int], RemoteTotal] = {}
    for a in answers:
        s = a.value
        if s is None:
            continue
        out.total += s.total
        for st in s.by_state:
            out.by_state[st.state] = out.by_state.get(st.state, 0) + st.count
        for r in s.by_remote:
            key = (r.remote_address, r.remote_port)
            t = remotes.get(key)
            if t is None:
                t = remotes[key] = RemoteTotal(r.remote_address, r.remote_port)
            t.count += r.count
            t.pods.add(a.member)
            for st in r.states:
                t.states[st.state] = t.states.get(st.state, 0) + st.count
    out.remotes = heapq.nsmallest(
        top, remotes.values(), key=lambda t: (-t.count, t.address, t.port)
    )
    return out


def merge_sockets(
    answers: Sequence[Answer[list[network_pb2.Socket]]],
) -> list[tuple[str, network_pb2.Socket]]:
    """Every pod's sockets as (pod, socket), in pod order."""
    return [(a.member, s) for a in answers if a.value for s in a.value]


@dataclass(frozen=True)
class PodRecord:
    """A log record tagged with its pod, in the shape ``tui.merge.Merger`` orders.

    ``source_id`` is pod + source, so lines of two pods with the same time and
    source keep a stable order (by pod name) and each pod's own order (seq).
    """

    time_ns: int
    source_id: str
    seq: int
    pod: str
    record: Any  # a logs_pb2.Record, or an events_pb2.Event when following events


def tag_records(pod: str, records: Iterable[logs_pb2.Record]) -> list[PodRecord]:
    """``records`` of ``pod`` as PodRecords."""
    return [PodRecord(r.time_ns, f"{pod}\0{r.source_id}", r.seq, pod, r) for r in records]


def merge_records(per_pod: Iterable[list[PodRecord]]) -> list[PodRecord]:
    """All records by (time, pod, source, seq)."""
    out = [r for rs in per_pod for r in rs]
    out.sort(key=lambda r: (r.time_ns, r.source_id, r.seq))
    return out


def merge_events(
    answers: Sequence[Answer[list[events_pb2.Event]]],
) -> list[tuple[str, events_pb2.Event]]:
    """Every pod's events by (time, pod, seq)."""
    rows = [(a.member, e) for a in answers if a.value for e in a.value]
    rows.sort(key=lambda r: (_ns(r[1].time), r[0], r[1].seq))
    return rows


def _ns(ts: Any) -> int:
    return int(ts.seconds) * 1_000_000_000 + int(ts.nanos)
