"""The Processes service over a real channel against a real sidecar (local mode)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from protos import common_pb2, processes_pb2
from sidecar.config import Config
from tests.conftest import Running, start_sidecar

CANARY = "canary-env-7f3a"  # conftest's app_process has DB_PASSWORD=<this>


def _list(r: Running, **kw: object) -> processes_pb2.ListProcessesResponse:
    req = processes_pb2.ListProcessesRequest(**kw)  # type: ignore[arg-type]
    return r.client.processes.ListProcesses(req, metadata=r.client.metadata, timeout=10)  # type: ignore[no-any-return]


def _get(
    r: Running, pid: int, start: int = 0, sections: tuple[str, ...] = ()
) -> processes_pb2.ProcessDetail:
    req = processes_pb2.GetProcessRequest(
        ref=common_pb2.ProcessRef(pid=pid, start_ticks=start), sections=sections
    )
    return r.client.processes.GetProcess(req, metadata=r.client.metadata, timeout=10)  # type: ignore[no-any-return]


def _signal(
    r: Running, ref: common_pb2.ProcessRef, sig: str
) -> processes_pb2.SignalProcessResponse:
    req = processes_pb2.SignalProcessRequest(ref=ref, signal=sig, reason="test")
    return r.client.processes.SignalProcess(req, metadata=r.client.metadata, timeout=10)  # type: ignore[no-any-return]


def wait_for_child(pid: int) -> int:
    """The app starts its child after the interpreter is up: wait for it (pgrep -P)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        res = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True, check=False)
        out = res.stdout
        if out.split():
            return int(out.split()[0])
        time.sleep(0.05)
    raise AssertionError(f"process {pid} started no child within 10 s")


@pytest.fixture
def app_sidecar(
    app_process: subprocess.Popen[bytes], tmp_path: Path
) -> Iterator[tuple[Running, subprocess.Popen[bytes], Path]]:
    """Local mode with signals enabled (SIGTERM and SIGQUIT only) and audit to a file."""
    audit = tmp_path / "audit.jsonl"
    r = start_sidecar(
        Config(
            local_root=app_process.pid,
            allow_signals=True,
            allowed_signals=("SIGTERM", "SIGQUIT"),
            audit_file=str(audit),
        )
    )
    yield r, app_process, audit
    r.client.close()
    r.sidecar.stop(0)


def test_listing_marks_the_app_container_and_its_tree(
    local_sidecar: Running, app_process: subprocess.Popen[bytes]
) -> None:
    """The app's process and its child are listed in the app container with their
    ppid, thread count and cmdline; a container filter returns just those two."""
    wait_for_child(app_process.pid)
    all_procs = _list(local_sidecar)
    assert all_procs.page.total == len(all_procs.processes) > 2
    by_pid = {p.ref.pid: p for p in all_procs.processes}
    app = by_pid[app_process.pid]
    assert app.container_id == f"local-{app_process.pid}"
    assert app.ppid == os.getpid() and app.threads == 1
    assert app.cmdline[0] == sys.executable and app.HasField("fds") and app.HasField("exe")
    assert app.HasField("cpu_percent") and app.HasField("rss_bytes") and app.rss_bytes > 0
    only_app = _list(local_sidecar, container=common_pb2.ContainerSelector(id=app.container_id))
    pids = {p.ref.pid for p in only_app.processes}
    assert app_process.pid in pids and len(pids) == 2
    child = next(p for p in only_app.processes if p.ref.pid != app_process.pid)
    assert child.ppid == app_process.pid and list(child.cmdline) == ["sleep", "300"]


def test_fields_mask_and_sorting(local_sidecar: Running) -> None:
    """fields=["fds"] reads fd counts but not exe/cwd/io; sort by fds descending is ordered;
    an unknown field is INVALID_ARGUMENT."""
    resp = _list(
        local_sidecar, fields=["fds"], sort=processes_pb2.PROCESS_SORT_FDS, descending=True
    )
    fds = [p.fds for p in resp.processes if p.HasField("fds")]
    assert fds == sorted(fds, reverse=True) and len(fds) > 2
    assert not any(p.HasField("exe") or p.HasField("io") for p in resp.processes)
    with pytest.raises(grpc.RpcError) as e:
        _list(local_sidecar, fields=["colour"])
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_secret_canary_never_leaves_the_sidecar(
    local_sidecar: Running, app_process: subprocess.Popen[bytes]
) -> None:
    """DB_PASSWORD's value appears in no response (listing, details of every section,
    watch); the name is shown and marked redacted."""
    seen = bytearray()
    seen += _list(local_sidecar).SerializeToString()
    detail = _get(local_sidecar, app_process.pid)
    seen += detail.SerializeToString()
    for section in ("env", "files", "threads", "limits", "cgroup", "sockets"):
        seen += _get(local_sidecar, app_process.pid, sections=(section,)).SerializeToString()
    watch = processes_pb2.WatchProcessRequest(
        ref=detail.process.ref, interval_ms=250, max_samples=2
    )
    for s in local_sidecar.client.processes.WatchProcess(
        watch, metadata=local_sidecar.client.metadata, timeout=10
    ):
        seen += s.SerializeToString()
    assert CANARY.encode() not in seen
    env = {e.name: e for e in detail.env}
    assert env["DB_PASSWORD"].redacted and env["DB_PASSWORD"].value == ""
    assert env["PLAIN"].value == "visible"


def test_canary_shown_only_when_reveal_is_on(app_process: subprocess.Popen[bytes]) -> None:
    """With reveal_secrets=true the value is returned as-is."""
    r = start_sidecar(Config(local_root=app_process.pid, reveal_secrets=True))
    try:
        env = {e.name: e for e in _get(r, app_process.pid, sections=("env",)).env}
        assert env["DB_PASSWORD"].value == CANARY and not env["DB_PASSWORD"].redacted
    finally:
        r.client.close()
        r.sidecar.stop(0)


def test_details_of_a_restarted_pid_fail_precondition(
    local_sidecar: Running, app_process: subprocess.Popen[bytes]
) -> None:
    """A stale start time is FAILED_PRECONDITION "process restarted"; a gone pid NOT_FOUND."""
    real = _get(local_sidecar, app_process.pid, sections=("limits",)).process.ref
    with pytest.raises(grpc.RpcError) as e:
        _get(local_sidecar, real.pid, real.start_ticks + 5)
    assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "process restarted" in (e.value.details() or "")
    with pytest.raises(grpc.RpcError) as e:
        _get(local_sidecar, 2**22 + 12345)
    assert e.value.code() == grpc.StatusCode.NOT_FOUND


def test_signals_are_refused_by_default_naming_the_switch(
    local_sidecar: Running, app_process: subprocess.Popen[bytes]
) -> None:
    """Without allow_signals, SignalProcess is PERMISSION_DENIED naming allow_signals,
    and the process lives on."""
    ref = _get(local_sidecar, app_process.pid, sections=("limits",)).process.ref
    with pytest.raises(grpc.RpcError) as e:
        _signal(local_sidecar, ref, "SIGTERM")
    assert e.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "allow_signals" in (e.value.details() or "")
    assert app_process.poll() is None


def test_allowed_signal_is_sent_by_pidfd_and_audited(
    app_sidecar: tuple[Running, subprocess.Popen[bytes], Path],
) -> None:
    """With signals on: a signal outside allowed_signals is PERMISSION_DENIED naming the list,
    a stale identity FAILED_PRECONDITION (nothing sent), the sidecar's own process refused,
    and SIGTERM is delivered through a pidfd and audited with pid, start and signal."""
    r, app, audit = app_sidecar
    ref = _get(r, app.pid, sections=("limits",)).process.ref
    with pytest.raises(grpc.RpcError) as e:
        _signal(r, ref, "SIGKILL")
    assert e.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "allowed_signals" in (e.value.details() or "")
    stale = common_pb2.ProcessRef(pid=ref.pid, start_ticks=ref.start_ticks + 1)
    with pytest.raises(grpc.RpcError) as e:
        _signal(r, stale, "SIGTERM")
    assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert app.poll() is None
    me = _get(r, os.getpid(), sections=("limits",)).process.ref
    with pytest.raises(grpc.RpcError) as e:
        _signal(r, me, "SIGTERM")
    assert e.value.code() == grpc.StatusCode.PERMISSION_DENIED
    resp = _signal(r, ref, "term")
    assert resp.delivered and resp.method == "pidfd_send_signal"
    assert app.wait(timeout=5) == -signal.SIGTERM
    records = [json.loads(line) for line in audit.read_text().splitlines()]
    sent = [x for x in records if x["method"].endswith("SignalProcess") and x.get("code") == "OK"]
    assert len(sent) == 1
    obj = sent[0]["object"]
    assert (obj["pid"], obj["start_ticks"], obj["signal"]) == (ref.pid, ref.start_ticks, "SIGTERM")
    assert obj["method"] == "pidfd_send_signal"


def test_watch_streams_bounded_samples(
    local_sidecar: Running, app_process: subprocess.Popen[bytes]
) -> None:
    """WatchProcess yields max_samples samples ~interval apart with rss, fds and cpu;
    when the process exits the stream ends NOT_FOUND."""
    ref = _get(local_sidecar, app_process.pid, sections=("limits",)).process.ref
    req = processes_pb2.WatchProcessRequest(ref=ref, interval_ms=250, max_samples=3)
    t = time.monotonic()
    samples = list(
        local_sidecar.client.processes.WatchProcess(
            req, metadata=local_sidecar.client.metadata, timeout=10
        )
    )
    assert len(samples) == 3 and time.monotonic() - t >= 0.5
    assert all(
        s.HasField("rss_bytes") and s.HasField("fds") and s.HasField("cpu_percent") for s in samples
    )
    assert all(s.threads == 1 for s in samples)
    stream = local_sidecar.client.processes.WatchProcess(
        processes_pb2.WatchProcessRequest(ref=ref, interval_ms=250),
        metadata=local_sidecar.client.metadata,
        timeout=10,
    )
    next(stream)
    app_process.kill()
    app_process.wait()
    with pytest.raises(grpc.RpcError) as e:
        for _ in stream:
            pass
    assert e.value.code() == grpc.StatusCode.NOT_FOUND


def test_details_have_every_section(
    local_sidecar: Running, app_process: subprocess.Popen[bytes]
) -> None:
    """A full GetProcess fills limits, cgroup, open files, threads, children and pss."""
    wait_for_child(app_process.pid)
    d = _get(local_sidecar, app_process.pid)
    assert any(lim.name == "Max open files" for lim in d.limits)
    assert d.cgroup.version in (1, 2)
    assert {f.fd for f in d.open_files} >= {0, 1, 2}
    assert [t.tid for t in d.threads] == [app_process.pid]
    assert len(d.children) == 1
    assert d.process.HasField("pss_bytes")


def test_big_listings_are_paged_under_the_message_limit(
    app_process: subprocess.Popen[bytes],
) -> None:
    """With a 300 KiB message limit and 24 processes carrying 30 KiB command lines, a
    listing ends early (truncated, with a token) and the pages chain through every
    process exactly once: no response ever exceeds the limit."""
    arg = "x" * (30 << 10)
    fat = [
        subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)", arg])
        for _ in range(24)
    ]
    r = start_sidecar(Config(local_root=app_process.pid, max_message_bytes=300 << 10))
    try:
        time.sleep(0.2)
        seen: list[int] = []
        token = ""
        pages = 0
        while True:
            resp = _list(r, page=common_pb2.PageRequest(page_token=token))
            pages += 1
            assert resp.ByteSize() <= 300 << 10
            seen += [p.ref.pid for p in resp.processes]
            token = resp.page.next_page_token
            if not token:
                break
            assert resp.page.truncated
        assert pages >= 3
        assert len(seen) == len(set(seen))
        assert {p.pid for p in fat} <= set(seen)
    finally:
        for p in fat:
            p.kill()
            p.wait()
        r.client.close()
        r.sidecar.stop(0)
