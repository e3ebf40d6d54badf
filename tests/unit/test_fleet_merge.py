"""Fleet merging and flag parsing: pure functions over real protobuf messages."""

from __future__ import annotations

import argparse

from protos import common_pb2, events_pb2, logs_pb2, network_pb2, processes_pb2
from tui.cli.common import add_connection_args
from tui.fleet.fanout import Answer
from tui.fleet.members import resolve_fleet, split_addresses
from tui.fleet.merge import (
    merge_events,
    merge_records,
    merge_socket_summaries,
    tag_records,
    top_processes,
)


def _proc(pid: int, cpu: float | None, rss: int = 0) -> processes_pb2.Process:
    p = processes_pb2.Process(ref=common_pb2.ProcessRef(pid=pid), rss_bytes=rss)
    if cpu is not None:
        p.cpu_percent = cpu
    return p


def test_top_processes_by_cpu_across_pods_with_stable_ties() -> None:
    """The N busiest across pods; equal cpu orders by pod then pid; unknown cpu last;
    failed pods contribute nothing."""
    answers = [
        Answer("b", [_proc(1, 5.0), _proc(2, 50.0), _proc(3, None)]),
        Answer("a", [_proc(9, 5.0), _proc(4, 70.0)]),
        Answer("c", None, "sidecar unavailable"),
    ]
    rows = top_processes(answers, 4)
    assert [(pod, p.ref.pid) for pod, p in rows] == [("a", 4), ("b", 2), ("a", 9), ("b", 1)]
    assert [(pod, p.ref.pid) for pod, p in top_processes(answers, 10)][-1] == ("b", 3)


def test_top_processes_by_rss() -> None:
    """--sort rss orders by resident memory."""
    answers = [Answer("a", [_proc(1, 0, 10), _proc(2, 0, 30)]), Answer("b", [_proc(1, 0, 20)])]
    assert [(pod, p.ref.pid) for pod, p in top_processes(answers, 3, "rss")] == [
        ("a", 2),
        ("b", 1),
        ("a", 1),
    ]


def _summary(*remotes: tuple[str, int, int, str]) -> network_pb2.SocketSummary:
    s = network_pb2.SocketSummary(total=sum(r[2] for r in remotes))
    for addr, port, n, state in remotes:
        s.by_remote.add(
            remote_address=addr, remote_port=port, count=n, states=[{"state": state, "count": n}]
        )
        s.by_state.add(state=state, count=n)
    return s


def test_socket_summaries_sum_by_remote_endpoint() -> None:
    """Connections to one endpoint add up over pods, with the number of pods and the states;
    the largest sum comes first even when it is small in every single pod."""
    answers = [
        Answer(
            "a", _summary(("10.0.0.5", 5432, 3, "ESTABLISHED"), ("10.0.0.9", 80, 4, "TIME_WAIT"))
        ),
        Answer("b", _summary(("10.0.0.5", 5432, 3, "CLOSE_WAIT"))),
        Answer("c", None, "dead"),
    ]
    t = merge_socket_summaries(answers, 10)
    assert t.total == 10
    assert t.by_state == {"ESTABLISHED": 3, "TIME_WAIT": 4, "CLOSE_WAIT": 3}
    first = t.remotes[0]
    assert (first.address, first.port, first.count, first.pods) == ("10.0.0.5", 5432, 6, {"a", "b"})
    assert first.states == {"ESTABLISHED": 3, "CLOSE_WAIT": 3}
    assert len(merge_socket_summaries(answers, 1).remotes) == 1


def test_log_records_merge_by_time_then_pod_then_source_order() -> None:
    """Records of several pods interleave by time; same time: by pod name; within one pod and
    source: the pod's own sequence."""

    def rec(t: int, seq: int, src: str = "s") -> logs_pb2.Record:
        return logs_pb2.Record(time_ns=t, seq=seq, source_id=src, message=f"{t}/{seq}")

    a = tag_records("a", [rec(1, 1), rec(5, 2), rec(5, 3)])
    b = tag_records("b", [rec(2, 1), rec(5, 2)])
    out = [(r.pod, r.record.message) for r in merge_records([b, a])]
    assert out == [("a", "1/1"), ("b", "2/1"), ("a", "5/2"), ("a", "5/3"), ("b", "5/2")]


def test_events_merge_by_time() -> None:
    """Events of several pods by time, ties by pod."""

    def ev(sec: int, seq: int) -> events_pb2.Event:
        e = events_pb2.Event(seq=seq)
        e.time.seconds = sec
        return e

    rows = merge_events([Answer("b", [ev(1, 1), ev(3, 2)]), Answer("a", [ev(2, 7), ev(3, 8)])])
    assert [(p, e.seq) for p, e in rows] == [("b", 1), ("a", 7), ("a", 8), ("b", 2)]


def _args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    add_connection_args(p)
    return p.parse_args(argv)


def test_addr_repeated_or_commas_names_a_fleet_one_addr_does_not() -> None:
    """--addr A --addr B and --addr A,B are the same fleet (duplicates dropped); a single
    --addr stays the plain string it always was and is not a fleet."""
    assert _args(["--addr", "h:1"]).addr == "h:1"
    assert resolve_fleet(_args(["--addr", "h:1"])) is None
    repeated = resolve_fleet(_args(["--addr", "h:1", "--addr", "h:2", "--addr", "h:1"]))
    commas = resolve_fleet(_args(["--addr", "h:1,h:2"]))
    assert repeated is not None and commas is not None
    assert [m.name for m in repeated.members] == [m.name for m in commas.members] == ["h:1", "h:2"]
    assert split_addresses(" a:1 , ,b:2,a:1") == ["a:1", "b:2"]


def test_more_pods_than_the_bound_is_refused() -> None:
    """--fleet-max-pods bounds the fan-out: a fleet beyond it is refused, saying how to raise it."""
    import pytest

    from tui.fleet.members import FleetError

    with pytest.raises(FleetError, match="more than --fleet-max-pods 2"):
        resolve_fleet(_args(["--addr", "h:1,h:2,h:3", "--fleet-max-pods", "2"]))


def test_following_needs_one_stream_per_pod(capsys: object) -> None:
    """`logs -f` over more pods than --fleet-concurrency is refused up front (exit 2), since
    each pod needs a stream of its own for the whole follow."""
    from tui.cli.main import main as cli_main

    rc = cli_main(["logs", "-f", "--addr", "127.0.0.1:1,127.0.0.1:2", "--fleet-concurrency", "1"])
    err = capsys.readouterr().err  # type: ignore[attr-defined]
    assert rc == 2
    assert "following 2 pods needs one stream each: raise --fleet-concurrency to 2" in err
