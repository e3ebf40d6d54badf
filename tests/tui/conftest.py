"""TUI test helpers: no randomness, fixed data, and what a person would see.

- Autouse: the recent-targets file and crash log go to a temp
  ``XDG_STATE_HOME``; cursor blink is off; animations are off.
- ``fixed_info()`` / ``fixed_overview()``: frozen sidecar answers (a fixed
  clock included) that the snapshot tests feed to the screens through their
  public ``show_status`` / ``freeze`` methods.
- ``screen_text(app)``: the screen as plain text, the way a person reads it.
- ``pilot_sidecar``: a real in-process sidecar over a fixed local app (a
  sleeper with a child), with a fixed pod name.
"""

from __future__ import annotations

import io
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from rich.console import Console

from protos import common_pb2, events_pb2, info_pb2, network_pb2, processes_pb2
from sidecar.config import Config
from tests.conftest import Running, start_sidecar
from tui.widgets.overview_render import OverviewData

#: The frozen "now" of every fixed answer.
NOW = datetime(2026, 11, 23, 3, 14, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _calm(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Remove randomness and keep the user's home untouched."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("TEXTUAL_ANIMATIONS", "none")
    monkeypatch.delenv("BORESCOPE_TOKEN", raising=False)
    from textual.widgets import Input

    monkeypatch.setattr(Input, "cursor_blink", False)


def screen_text(app: Any) -> str:
    """The active screen (with the screens under a modal) as plain text."""
    width, height = app.size
    console = Console(
        width=width,
        height=height,
        file=io.StringIO(),
        force_terminal=True,
        color_system="truecolor",
        record=True,
        legacy_windows=False,
        safe_box=False,
    )
    try:
        console.print(
            app.screen._compositor.render_update(full=True, screen_stack=app._background_screens)
        )
    except TypeError:
        # Mid-layout (between a screen change and its first paint) a line can be
        # missing; the caller's wait_for simply asks again.
        return ""
    return console.export_text()


def ts(when: datetime) -> Timestamp:
    t = Timestamp()
    t.FromDatetime(when)
    return t


def fixed_info() -> info_pb2.GetInfoResponse:
    """A GetInfo answer of a typical pod: app, sidecar, pause."""
    app = info_pb2.Container(
        id="mnt-4026532301",
        name="checkout",
        kind=info_pb2.CONTAINER_KIND_APP,
        root_process=common_pb2.ProcessRef(pid=7, start_ticks=1234),
        pids=[7, 19, 20],
        started=ts(NOW - timedelta(hours=2, minutes=5)),
        restarts=2,
        root_accessible=True,
    )
    side = info_pb2.Container(
        id="mnt-4026532305",
        name="borescope",
        kind=info_pb2.CONTAINER_KIND_SIDECAR,
        root_process=common_pb2.ProcessRef(pid=31, start_ticks=2000),
        pids=[31],
        started=ts(NOW - timedelta(minutes=42)),
        root_accessible=True,
    )
    pause = info_pb2.Container(
        id="mnt-4026532200",
        name="pause",
        kind=info_pb2.CONTAINER_KIND_INFRA,
        root_process=common_pb2.ProcessRef(pid=1, start_ticks=10),
        pids=[1],
        started=ts(NOW - timedelta(days=3, hours=4)),
        root_accessible=False,
    )
    return info_pb2.GetInfoResponse(
        api_version="1.0",
        sidecar_version="0.1.0",
        pod_name="checkout-7d9f8b-x2x9z",
        namespace="shop",
        node_name="node-a3",
        hostname="checkout-7d9f8b-x2x9z",
        sidecar_started=ts(NOW - timedelta(minutes=42)),
        boot_time=ts(NOW - timedelta(days=9)),
        access=info_pb2.Access(uid=10001, gid=10001, capabilities=[], openat2=True, pidfd=True),
        containers=[app, side, pause],
        sidecar_pid=31,
    )


def fixed_overview() -> OverviewData:
    """Overview data with every section filled, at the fixed clock."""
    info = fixed_info()
    cgroup = processes_pb2.CgroupStats(
        version=2,
        path="/kubepods/burstable/pod1/checkout",
        memory_limit_bytes=512 << 20,
        memory_usage_bytes=401 << 20,
        oom_kills=1,
        cpu_quota_us=50_000,
        cpu_period_us=100_000,
        nr_periods=1200,
        nr_throttled=312,
        pids_current=23,
        pids_max=256,
    )

    def proc(pid: int, name: str, cpu: float, rss: int) -> processes_pb2.Process:
        return processes_pb2.Process(
            ref=common_pb2.ProcessRef(pid=pid, start_ticks=pid * 100),
            name=name,
            cpu_percent=cpu,
            rss_bytes=rss,
            threads=4,
            cmdline=[name],
        )

    procs = [
        proc(7, "checkout", 48.5, 310 << 20),
        proc(19, "worker", 12.0, 64 << 20),
        # A hostile name: the terminal must show it escaped, not obey it.
        proc(20, "evil\x1b]52;c;aGk=\x07", 0.5, 8 << 20),
    ]
    listener = network_pb2.Socket(
        family=network_pb2.SOCKET_FAMILY_INET,
        protocol=network_pb2.SOCKET_PROTOCOL_TCP,
        state="LISTEN",
        local_address="0.0.0.0",
        local_port=8080,
        owners=[
            network_pb2.SocketOwner(process=common_pb2.ProcessRef(pid=7), fd=5, name="checkout")
        ],
    )
    metrics = network_pb2.Socket(
        family=network_pb2.SOCKET_FAMILY_INET6,
        protocol=network_pb2.SOCKET_PROTOCOL_TCP,
        state="LISTEN",
        local_address="::1",
        local_port=9090,
        owners=[
            network_pb2.SocketOwner(process=common_pb2.ProcessRef(pid=19), fd=3, name="worker")
        ],
    )
    events = [
        events_pb2.Event(
            seq=i + 1,
            time=ts(NOW - timedelta(minutes=30 - i * 7)),
            kind=kind,
            severity=sev,
            container_id=info.containers[0].id,
            message=msg,
        )
        for i, (kind, sev, msg) in enumerate(
            [
                (
                    events_pb2.EVENT_KIND_RECORDER_STARTED,
                    events_pb2.SEVERITY_INFO,
                    "recorder started",
                ),
                (
                    events_pb2.EVENT_KIND_OOM_KILL,
                    events_pb2.SEVERITY_CRITICAL,
                    "OOM kill: checkout (pid 7)",
                ),
                (
                    events_pb2.EVENT_KIND_CONTAINER_RESTARTED,
                    events_pb2.SEVERITY_WARNING,
                    "container checkout restarted",
                ),
                (
                    events_pb2.EVENT_KIND_PORT_OPENED,
                    events_pb2.SEVERITY_INFO,
                    "port 8080/tcp opened by checkout",
                ),
            ]
        )
    ]
    samples = [
        events_pb2.ContainerSample(
            time=ts(NOW - timedelta(seconds=(60 - i) * 10)),
            container_id=info.containers[0].id,
            cpu_percent=float((i * 7) % 50),
            rss_bytes=(200 + i * 3) << 20,
            processes=3,
            fds=40,
            memory_cgroup_bytes=(250 + (i * 5) % 150) << 20,
        )
        for i in range(60)
    ]
    return OverviewData(
        now=NOW,
        info=info,
        cgroup=cgroup,
        processes=procs,
        listeners=[listener, metrics],
        events=events,
        samples=samples,
    )


@pytest.fixture
def fixed_app_process() -> Iterator[subprocess.Popen[bytes]]:
    """A fixed local app: a sleeper with one child (killed at the end)."""
    p = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import subprocess,time; c=subprocess.Popen(['sleep','300']); time.sleep(300)",
        ]
    )
    yield p
    p.kill()
    p.wait()
    subprocess.run(["pkill", "-P", str(p.pid)], check=False)


@pytest.fixture
def pilot_sidecar(fixed_app_process: subprocess.Popen[bytes]) -> Iterator[Running]:
    """A real in-process sidecar (auth on) over the fixed local app, pod "pilot-pod"."""
    r = start_sidecar(Config(local_root=fixed_app_process.pid, pod_name="pilot-pod"))
    yield r
    r.client.close()
    r.sidecar.stop(0)


def fixed_net() -> Any:
    """A Network screen refresh: listeners, states, remotes (fixed, like a busy web pod)."""
    from tui.widgets.net_data import NetData

    def owner(pid: int, fd: int, name: str) -> network_pb2.SocketOwner:
        return network_pb2.SocketOwner(process=common_pb2.ProcessRef(pid=pid), fd=fd, name=name)

    listeners = [
        network_pb2.Socket(
            family=network_pb2.SOCKET_FAMILY_INET,
            protocol=network_pb2.SOCKET_PROTOCOL_TCP,
            state="LISTEN",
            local_address="0.0.0.0",
            local_port=8080,
            send_queue=128,
            owners=[owner(7, 5, "checkout")],
        ),
        network_pb2.Socket(
            family=network_pb2.SOCKET_FAMILY_INET6,
            protocol=network_pb2.SOCKET_PROTOCOL_TCP,
            state="LISTEN",
            local_address="::1",
            local_port=9090,
            send_queue=128,
            owners=[owner(19, 3, "worker")],
        ),
    ]
    summary = network_pb2.SocketSummary(
        total=934,
        by_state=[
            network_pb2.StateCount(state="ESTABLISHED", count=902),
            network_pb2.StateCount(state="TIME_WAIT", count=30),
            network_pb2.StateCount(state="LISTEN", count=2),
        ],
        by_remote=[
            network_pb2.RemoteCount(
                remote_address="10.0.4.17",
                remote_port=5432,
                count=900,
                states=[network_pb2.StateCount(state="ESTABLISHED", count=900)],
            ),
            network_pb2.RemoteCount(
                remote_address="10.0.9.2",
                remote_port=6379,
                count=32,
                states=[
                    network_pb2.StateCount(state="ESTABLISHED", count=2),
                    network_pb2.StateCount(state="TIME_WAIT", count=30),
                ],
            ),
        ],
        listeners=listeners,
    )
    return NetData(summary=summary)


def fixed_processes() -> tuple[processes_pb2.ListProcessesResponse, list[info_pb2.Container]]:
    """A Processes listing of the fixed pod (app, sidecar, pause), with a hostile cmdline."""
    info = fixed_info()
    app_id, side_id, pause_id = (c.id for c in info.containers)

    def proc(
        pid: int, ppid: int, user: str, name: str, cmd: list[str], *, cid: str, cpu: float, rss: int
    ) -> processes_pb2.Process:
        return processes_pb2.Process(
            ref=common_pb2.ProcessRef(pid=pid, start_ticks=pid * 100),
            ppid=ppid,
            user=user,
            uid=10001,
            state="S (sleeping)",
            cpu_percent=cpu,
            rss_bytes=rss,
            threads=4 if pid == 7 else 1,
            fds=42 if pid == 7 else 5,
            cmdline=cmd,
            name=name,
            container_id=cid,
        )

    procs = [
        proc(1, 0, "65535", "pause", ["/pause"], cid=pause_id, cpu=0.0, rss=1 << 20),
        proc(7, 0, "app", "checkout", ["/app/checkout"], cid=app_id, cpu=48.5, rss=310 << 20),
        proc(19, 7, "app", "worker", ["/app/checkout", "w"], cid=app_id, cpu=12.0, rss=64 << 20),
        proc(
            20,
            7,
            "app",
            "evil",
            ["evil\x1b]52;c;aGk=\x07", "\r--x"],
            cid=app_id,
            cpu=0.5,
            rss=8 << 20,
        ),
        proc(31, 0, "10001", "borescope", ["borescope"], cid=side_id, cpu=0.7, rss=40 << 20),
    ]
    return processes_pb2.ListProcessesResponse(processes=procs), list(info.containers)
