"""Incidents in a real pod, seen by the flight recorder: a crash and an OOM kill.

The sandbox's app is made to fail for real (``/crash`` exits with code 3,
``/alloc`` grows past its 256 MiB cgroup limit and the kernel OOM-kills it);
the sandbox restarts it as a kubelet would. The sidecar's Events service must
report what happened, with the exit code, to an engineer who connects after.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from protos import events_pb2
from sidecar.sandbox.harness import Sandbox
from sidecar.sandbox.start import start_sandbox
from tui.client import Client, Target

pytestmark = pytest.mark.sandbox


@pytest.fixture
def pod() -> Iterator[Sandbox]:
    """A pod of this test's own with a fast recorder (0.5 s between samples)."""
    if os.geteuid() != 0:
        pytest.skip("the sandbox pod needs root")
    sb = start_sandbox("pod", interval=1.0, settings=["recorder_interval_s=0.5"])
    try:
        yield sb
    finally:
        sb.close()


def _get_in_pod(sb: Sandbox, path: str) -> None:
    code = (
        "import urllib.request\n"
        f"try: urllib.request.urlopen('http://127.0.0.1:{sb.http_port}{path}', timeout=20)\n"
        "except OSError: pass\n"  # a 500, or the connection cut by the kill: both expected
    )
    subprocess.run(
        ["nsenter", f"--net={sb.netns}", sys.executable, "-c", code], timeout=40, check=True
    )


def _events(c: Client) -> list[events_pb2.Event]:
    stream = c.events.FollowEvents(
        events_pb2.FollowEventsRequest(follow=False), metadata=c.metadata, timeout=10
    )
    return [e for batch in stream for e in batch.events]


def _wait_event(c: Client, match, timeout: float = 20) -> events_pb2.Event:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    seen: list[events_pb2.Event] = []
    while time.monotonic() < deadline:
        seen = _events(c)
        hit = [e for e in seen if match(e)]
        if hit:
            return hit[0]
        time.sleep(0.25)
    kinds = [(events_pb2.EventKind.Name(e.kind), e.message) for e in seen]
    raise AssertionError(f"no such event; the recorder has: {kinds}")


def _connect(sb: Sandbox) -> Client:
    c = Client(Target(sb.address, sb.token))
    c.wait_ready(10)
    _wait_event(c, lambda e: e.kind == events_pb2.EVENT_KIND_RECORDER_STARTED)
    time.sleep(1.0)  # a couple of samples: the recorder knows the app before it fails
    return c


def test_a_crash_is_recorded_and_the_restart_seen(pod: Sandbox) -> None:
    """The app exiting (code 3) is a PROCESS_EXITED event for its pid; the new one is seen.

    The exit code itself is not asserted: the app's root is not the sidecar's
    child (its parent is nsenter here, containerd-shim in Kubernetes), so only
    its parent learns it; where the recorder reports one, it must be 3.
    """
    with _connect(pod) as c:
        pid = pod.app_pid
        _get_in_pod(pod, "/crash")
        ev = _wait_event(
            c, lambda e: e.kind == events_pb2.EVENT_KIND_PROCESS_EXITED and e.process.pid == pid
        )
        if ev.HasField("exit_code"):
            assert ev.exit_code == 3, ev
        deadline = time.monotonic() + 15
        while pod.restarts < 1 and time.monotonic() < deadline:
            time.sleep(0.1)
        new = pod.app_pid
        _wait_event(
            c, lambda e: e.kind == events_pb2.EVENT_KIND_PROCESS_STARTED and e.process.pid == new
        )


def test_an_oom_kill_is_recorded(pod: Sandbox) -> None:
    """The kernel OOM-killing the app (past its cgroup limit) is an OOM_KILL event."""
    if "memory" not in pod.cgroups["demo-app"].limits:  # type: ignore[attr-defined]
        pytest.skip("no writable memory cgroup controller here")
    with _connect(pod) as c:
        _get_in_pod(pod, "/alloc?mb=300")
        ev = _wait_event(c, lambda e: e.kind == events_pb2.EVENT_KIND_OOM_KILL, timeout=10)
        assert ev.severity == events_pb2.SEVERITY_CRITICAL, ev
        assert "demo-app" in ev.message, ev
        deadline = time.monotonic() + 5  # the sandbox's own watch polls every 0.2 s
        while pod.last_exit is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert pod.last_exit == -9, "the kernel's OOM killer sends SIGKILL"
