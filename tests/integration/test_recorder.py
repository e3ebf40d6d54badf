"""The flight recorder against real processes, sockets, log files and cgroups.

Each test runs a real app process tree in local mode and a recorder sampling
it every 0.1 s, then makes something happen and waits for the event.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest

from agent._pod import Pod
from agent._recorder import Recorder
from agent.results.events import Event, EventKind
from protos import common_pb2, events_pb2
from sidecar.config import Config
from tests.conftest import start_sidecar

APP = r"""
import socket, subprocess, sys, time
kids = []
socks = {}
held = []
print("ready", flush=True)
for line in sys.stdin:
    cmd = line.split()
    if cmd[0] == "spawn":
        kids.append(subprocess.Popen(["sleep", "300"]))
        print(kids[-1].pid, flush=True)
    elif cmd[0] == "supervise":
        # A supervisor child that restarts its worker whenever it dies.
        kids.append(subprocess.Popen([sys.executable, "-c",
            "import subprocess\nwhile True:\n    subprocess.run(['sleep', '300'])\n"]))
        print(kids[-1].pid, flush=True)
    elif cmd[0] == "listen":
        s = socket.create_server(("127.0.0.1", 0))
        socks[s.getsockname()[1]] = s
        print(s.getsockname()[1], flush=True)
    elif cmd[0] == "close":
        socks.pop(int(cmd[1])).close()
        print("closed", flush=True)
    elif cmd[0] == "fds":
        held.append([open("/dev/null") for _ in range(int(cmd[1]))])
        print("opened", flush=True)
    elif cmd[0] == "alloc":
        held.append(b"x" * (int(cmd[1]) << 20))  # written, so resident
        print("allocated", flush=True)
"""


class App:
    """A real app process tree driven over stdin."""

    def __init__(self, argv: list[str] | None = None) -> None:
        self.p = subprocess.Popen(
            argv or [sys.executable, "-c", APP],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.p.stdout is not None
        self.p.stdout.readline()

    def do(self, cmd: str) -> str:
        assert self.p.stdin is not None and self.p.stdout is not None
        self.p.stdin.write(cmd + "\n")
        self.p.stdin.flush()
        return self.p.stdout.readline().strip()

    def close(self) -> None:
        subprocess.run(["pkill", "-KILL", "-P", str(self.p.pid)], check=False)
        self.p.kill()
        self.p.wait()


@pytest.fixture
def app() -> Iterator[App]:
    a = App()
    yield a
    a.close()


@pytest.fixture
def recorder(app: App) -> Iterator[Recorder]:
    r = Recorder(Pod(local_root=app.p.pid), interval=0.1, ring_size=1000)
    _wait_for(r, lambda e: e.kind is EventKind.RECORDER_STARTED)
    time.sleep(0.3)  # a few samples: the baseline is taken
    yield r
    r.close()


def _wait_for(r: Recorder, match: Callable[[Event], bool], timeout: float = 10.0) -> Event:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        events, _ = r.ring.after(0)
        for e in events:
            if match(e):
                return e
        time.sleep(0.02)
    raise AssertionError(
        f"no such event; got {[(e.kind.name, e.message) for e in r.ring.after(0)[0]]}"
    )


def test_killed_process_exit_code_and_signal(app: App, recorder: Recorder) -> None:
    """A child killed with SIGKILL is reported as exited with status 137 and signal SIGKILL."""
    pid = int(app.do("spawn"))
    started = _wait_for(
        recorder,
        lambda e: (
            e.kind is EventKind.PROCESS_STARTED and e.process is not None and e.process.pid == pid
        ),
    )
    assert "sleep" in started.message
    os.kill(pid, signal.SIGKILL)  # the app does not reap it at once: a zombie with its status
    ev = _wait_for(
        recorder,
        lambda e: (
            e.kind is EventKind.PROCESS_EXITED and e.process is not None and e.process.pid == pid
        ),
    )
    assert ev.exit_code == 137
    assert ev.attrs["signal"] == "SIGKILL"
    assert "killed by SIGKILL" in ev.message


def test_restarted_process_is_called_a_restart(app: App, recorder: Recorder) -> None:
    """A worker that dies and is started again by its supervisor reads as a restart."""
    sup = int(app.do("supervise"))
    first = _wait_for(
        recorder, lambda e: e.kind is EventKind.PROCESS_STARTED and e.attrs.get("comm") == "sleep"
    )
    assert first.process is not None
    time.sleep(0.3)
    os.kill(first.process.pid, signal.SIGTERM)
    ev = _wait_for(
        recorder,
        lambda e: (
            e.kind is EventKind.PROCESS_STARTED
            and e.attrs.get("restart_of") == str(first.process.pid)
        ),
    )  # type: ignore[union-attr]
    assert "restarted" in ev.message
    exited = _wait_for(
        recorder, lambda e: e.kind is EventKind.PROCESS_EXITED and e.process == first.process
    )
    assert exited.seq < ev.seq
    assert sup in Pod(local_root=app.p.pid).container(f"local-{app.p.pid}").pids


def test_port_opened_and_closed(app: App, recorder: Recorder) -> None:
    """A listening socket the app opens and closes gives PORT_OPENED (with its pid) and PORT_CLOSED."""
    port = int(app.do("listen"))
    key = f"tcp 127.0.0.1:{port}"
    opened = _wait_for(
        recorder, lambda e: e.kind is EventKind.PORT_OPENED and e.attrs.get("port") == key
    )
    assert opened.attrs["pid"] == str(app.p.pid)
    app.do(f"close {port}")
    closed = _wait_for(
        recorder, lambda e: e.kind is EventKind.PORT_CLOSED and e.attrs.get("port") == key
    )
    assert closed.seq > opened.seq


def test_fd_and_rss_jumps(app: App, recorder: Recorder) -> None:
    """Opening 300 files and writing 200 MiB give FD_JUMP and RSS_JUMP events with both sizes
    (a sample may catch the opens or the allocation half-way: each jump is at least its
    threshold, 64 fds or 64 MiB, and never more than what the app did)."""
    app.do("fds 300")
    fd = _wait_for(recorder, lambda e: e.kind is EventKind.FD_JUMP)
    assert 64 <= int(fd.attrs["to"]) - int(fd.attrs["from"]) <= 300
    app.do("alloc 200")
    rss = _wait_for(recorder, lambda e: e.kind is EventKind.RSS_JUMP)
    assert int(rss.attrs["to_bytes"]) - int(rss.attrs["from_bytes"]) >= 64 << 20  # the threshold
    assert "MiB" in rss.message


def test_error_burst_and_events_rpc(app: App, tmp_path: Path) -> None:
    """Twenty error lines in a log file within one interval give an ERROR_BURST event, served by
    FollowEvents (history then live) and merged into FollowLogs as the recorder source."""
    log = tmp_path / "app.log"
    log.write_text('{"level":"info","msg":"hello"}\n')
    r = start_sidecar(
        Config(local_root=app.p.pid, log_sources=(str(log),), recorder_interval_s=0.1)
    )
    try:
        md = r.client.metadata
        time.sleep(0.5)  # the recorder has opened the log at its end
        with log.open("a") as f:
            for i in range(20):
                f.write(f'{{"level":"error","msg":"db down {i}"}}\n')
        got: list[events_pb2.Event] = []
        call = r.client.events.FollowEvents(
            events_pb2.FollowEventsRequest(follow=True), metadata=md, timeout=15
        )
        for b in call:
            got += b.events
            if any(e.kind == events_pb2.EVENT_KIND_ERROR_BURST for e in got):
                call.cancel()
                break
        burst = next(e for e in got if e.kind == events_pb2.EVENT_KIND_ERROR_BURST)
        assert burst.attrs["count"] == "20" and "db down 0" in burst.attrs["first"]
        assert got[0].kind == events_pb2.EVENT_KIND_RECORDER_STARTED
        # The same event is a record of the merged log stream (source "recorder").
        from protos import logs_pb2

        recs = [
            x
            for b in r.client.logs.FollowLogs(
                logs_pb2.FollowLogsRequest(
                    start_at=logs_pb2.START_AT_BEGINNING,
                    filter=logs_pb2.LogFilter(source_ids=["recorder"]),
                ),
                metadata=md,
                timeout=10,
            )
            for x in b.records
        ]
        assert any(
            x.kind == logs_pb2.RECORD_KIND_EVENT and "error-level" in x.message for x in recs
        )
        samples = r.client.events.GetSamples(events_pb2.GetSamplesRequest(), metadata=md, timeout=5)
        assert {s.container_id for s in samples.samples} == {f"local-{app.p.pid}"}
        assert samples.interval_ms == 100 and samples.samples
        assert all(s.rss_bytes > 0 for s in samples.samples)
    finally:
        r.client.close()
        r.sidecar.stop(0)


def test_event_cursor_lost_and_resume(app: App) -> None:
    """With a ring of 5, a cursor whose events were evicted is OUT_OF_RANGE with the earliest
    cursor; asking for a gap yields the gap first; resuming from a kept cursor is exactly once."""
    r = start_sidecar(Config(local_root=app.p.pid, recorder_interval_s=0.1, recorder_ring_size=5))
    try:
        md = r.client.metadata
        for _ in range(4):  # each spawn + kill gives started and exited events
            pid = int(app.do("spawn"))
            time.sleep(0.25)
            os.kill(pid, signal.SIGKILL)
        time.sleep(0.4)
        with pytest.raises(grpc.RpcError) as e:
            list(
                r.client.events.FollowEvents(
                    events_pb2.FollowEventsRequest(cursor="r1.1"), metadata=md, timeout=5
                )
            )
        assert e.value.code() == grpc.StatusCode.OUT_OF_RANGE
        earliest = dict(e.value.trailing_metadata())["borescope-earliest-cursor"]
        batches = list(
            r.client.events.FollowEvents(
                events_pb2.FollowEventsRequest(
                    cursor="r1.1", on_lost_cursor=common_pb2.LOST_CURSOR_GAP
                ),
                metadata=md,
                timeout=5,
            )
        )
        assert batches[0].gap.lost > 0
        kept = [ev.seq for b in batches for ev in b.events]
        assert kept == list(range(int(earliest[3:]) + 1, kept[-1] + 1))
        resumed = [
            ev.seq
            for b in r.client.events.FollowEvents(
                events_pb2.FollowEventsRequest(cursor=f"r1.{kept[1]}"), metadata=md, timeout=5
            )
            for ev in b.events
        ]
        assert resumed[: len(kept) - 2] == kept[2:]
    finally:
        r.client.close()
        r.sidecar.stop(0)


MEMCG = "/sys/fs/cgroup/memory"


def test_real_oom_kill(tmp_path: Path) -> None:
    """A hog in a cgroup v1 memory cgroup limited to 32 MiB is OOM-killed: OOM_KILL is reported."""
    if not os.path.isdir(MEMCG) or os.geteuid() != 0:
        pytest.skip("needs root and the cgroup v1 memory controller at /sys/fs/cgroup/memory")
    cg = f"{MEMCG}/borescope-oomtest-{uuid.uuid4().hex[:8]}"
    try:
        os.mkdir(cg)
        Path(cg, "memory.limit_in_bytes").write_text(str(32 << 20))
    except OSError as e:
        pytest.skip(f"cannot make a memory cgroup here: {e}")
    hog = "b = []\nwhile True: b.append(bytearray(1 << 20))"
    app = App(
        [
            "sh",
            "-c",
            f'echo $$ > {cg}/cgroup.procs; echo ready; read x; {sys.executable} -c "{hog}" & wait; sleep 300',
        ]
    )
    rec = Recorder(Pod(local_root=app.p.pid), interval=0.1)
    try:
        time.sleep(0.3)
        assert app.p.stdin is not None
        app.p.stdin.write("go\n")
        app.p.stdin.flush()
        ev = _wait_for(rec, lambda e: e.kind is EventKind.OOM_KILL, timeout=20)
        assert ev.attrs["count"] == "1"
        assert "OOM" in ev.message
    finally:
        rec.close()
        app.close()
        with contextlib.suppress(OSError):
            os.rmdir(cg)
