"""The connection watcher over real channels: handshake, pings, loss, backoff, recovery."""

from __future__ import annotations

import random
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from protos import info_pb2
from sidecar.config import Config
from sidecar.deps import Deps
from sidecar.server import build
from tests.conftest import Running, new_token, start_sidecar
from tui.client import Client, ConnectError, Target
from tui.connection import (
    CHANNEL_OPTIONS,
    Backoff,
    Connection,
    IncompatibleSidecar,
    Status,
    check_version,
    first_contact,
)
from tui.messages import CONNECTED, CONNECTING, INCOMPATIBLE, RECONNECTING


class Recorder:
    """Collects every Status the watcher reports (from its thread)."""

    def __init__(self) -> None:
        self.seen: list[Status] = []
        self.lock = threading.Lock()

    def __call__(self, s: Status) -> None:
        with self.lock:
            self.seen.append(s)

    def wait(self, cond: Callable[[Status], bool], timeout: float = 10.0) -> Status:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                for s in self.seen:
                    if cond(s):
                        return s
            time.sleep(0.02)
        raise AssertionError(f"no such status within {timeout}s: {[s.state for s in self.seen]}")


@pytest.fixture
def app_proc() -> Iterator[subprocess.Popen[bytes]]:
    p = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
    yield p
    p.kill()
    p.wait()


def test_backoff_grows_caps_and_never_hot_loops() -> None:
    """Delays grow roughly exponentially, stay within the cap, are never 0, and reset."""
    b = Backoff(initial=0.5, maximum=8.0, rng=random.Random(7))
    delays = [b.next() for _ in range(10)]
    assert all(0.25 <= d <= 8.0 for d in delays)
    assert delays[-1] >= 4.0  # at the cap: between cap/2 and cap
    assert max(delays[:2]) <= 1.0
    b.reset()
    assert b.next() <= 0.5


def test_version_check_names_the_side_to_upgrade() -> None:
    """A different major is refused with a message saying which side is older; minors pass."""
    check_version(info_pb2.GetInfoResponse(api_version="1.7"), "h:1")
    with pytest.raises(IncompatibleSidecar, match=r"API 2\.0.*upgrade this client"):
        check_version(info_pb2.GetInfoResponse(api_version="2.0", sidecar_version="2.1"), "h:1")
    with pytest.raises(IncompatibleSidecar, match=r"API 0\.9.*upgrade the sidecar"):
        check_version(info_pb2.GetInfoResponse(api_version="0.9"), "h:1")


def test_connected_with_latency_then_reconnecting_then_back(
    app_proc: subprocess.Popen[bytes],
) -> None:
    """Pings report a latency; when the sidecar dies the state turns "reconnecting" within
    about one ping interval; a sidecar on the same address brings "connected" back with
    reconnected=True and fresh info."""
    token, digest = new_token()
    config = Config(local_root=app_proc.pid, pod_name="conn-pod", token_sha256=digest)
    first = start_sidecar(config, token=token)
    client = Client(Target(first.address, token), options=CHANNEL_OPTIONS)
    rec = Recorder()
    conn = Connection(client, rec, ping_interval=0.1, timeout=1.0, backoff=Backoff(0.1, 0.5))
    second = None
    try:
        conn.start()
        s = rec.wait(lambda s: s.state == CONNECTED and s.latency_ms is not None)
        assert s.info is not None and s.info.pod_name == "conn-pod"
        assert 0 < s.latency_ms < 1000  # type: ignore[operator]
        t0 = time.monotonic()
        first.sidecar.stop(0)
        lost = rec.wait(lambda s: s.state == RECONNECTING)
        assert time.monotonic() - t0 < 3.0
        assert "unavailable" in lost.detail.lower()
        rec.wait(lambda s: s.state == RECONNECTING and s.attempt >= 2)
        second = build(f"127.0.0.1:{first.sidecar.port}", config, Deps.from_config(config))
        second.start()
        back = rec.wait(lambda s: s.state == CONNECTED and s.reconnected, timeout=15)
        assert back.info is not None and back.info.pod_name == "conn-pod"
    finally:
        conn.stop()
        client.close()
        first.client.close()
        if second is not None:
            second.stop(0)


def test_unreachable_reports_connecting_with_growing_attempts() -> None:
    """Nothing listening: "connecting" with the reason, and attempts grow with backoff."""
    client = Client(Target("127.0.0.1:1"), options=CHANNEL_OPTIONS)
    rec = Recorder()
    conn = Connection(client, rec, timeout=0.5, backoff=Backoff(0.05, 0.2))
    try:
        conn.start()
        s = rec.wait(lambda s: s.attempt >= 3)
        assert s.state == CONNECTING and s.retry_in_s is not None
        assert s.detail
    finally:
        conn.stop()
        client.close()


def test_incompatible_sidecar_is_reported(
    app_proc: subprocess.Popen[bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real sidecar serving API 2.0: the watcher says "incompatible" with a clear message,
    and the first contact of `borescope tui` refuses it."""
    import sidecar.services.info as info_service

    monkeypatch.setattr(info_service, "API_VERSION", "2.0")
    r: Running = start_sidecar(Config(local_root=app_proc.pid))
    rec = Recorder()
    conn = Connection(r.client, rec, timeout=1.0, backoff=Backoff(0.05, 0.2))
    try:
        conn.start()
        s = rec.wait(lambda s: s.state == INCOMPATIBLE)
        assert "API 2.0" in s.detail and "upgrade this client" in s.detail
        with pytest.raises(IncompatibleSidecar):
            first_contact(r.client, 2.0)
    finally:
        conn.stop()
        r.client.close()
        r.sidecar.stop(0)


def test_first_contact_without_token_is_one_clear_line(
    app_proc: subprocess.Popen[bytes],
) -> None:
    """Auth on, no token: the first contact fails in one line that says how to pass one."""
    r = start_sidecar(Config(local_root=app_proc.pid))
    client = Client(Target(r.address, ""))
    try:
        with pytest.raises(ConnectError, match=r"not authenticated.*BORESCOPE_TOKEN") as e:
            first_contact(client, 2.0)
        assert "\n" not in str(e.value)
    finally:
        client.close()
        r.client.close()
        r.sidecar.stop(0)


def test_first_contact_refused_port_fails_fast() -> None:
    """A refused port fails at once (not after the timeout) and says what to check."""
    client = Client(Target("127.0.0.1:1"), options=CHANNEL_OPTIONS)
    t0 = time.monotonic()
    try:
        with pytest.raises(ConnectError, match=r"cannot reach the sidecar.*port-forward"):
            first_contact(client, 5.0)
    finally:
        client.close()
    assert time.monotonic() - t0 < 2.0
