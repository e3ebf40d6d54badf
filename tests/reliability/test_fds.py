"""Long-lived fds: the flight recorder's log watching holds one reader per source, forever
the same ones, however many times it rediscovers sources.

Found by the load family: every 30 s (LOG_REDISCOVER_S) the recorder opened a reader
for every log source and dropped, without closing, those it already had; a sidecar
leaked one fd per source per 30 s until it ran out.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator

import pytest

from sidecar.config import Config
from tests.conftest import Running, start_sidecar
from tests.reliability._pod import LOG_PATH, App, canary_app, is_root

pytestmark = [
    pytest.mark.skipif(not is_root(), reason="needs root: the app runs chrooted"),
    pytest.mark.timeout(60),
]


@pytest.fixture
def pod() -> Iterator[tuple[App, Running]]:
    with canary_app(interval=0.1) as app:
        r = start_sidecar(Config(local_root=app.pid, log_sources=(LOG_PATH,)))
        try:
            yield app, r
        finally:
            r.client.close()
            r.sidecar.stop(0)


def _log_fds() -> int:
    n = 0
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            n += os.readlink(f"/proc/self/fd/{fd}").endswith(LOG_PATH)
    return n


def test_recorder_rediscovery_does_not_leak_log_fds(pod: tuple[App, Running]) -> None:
    """Ten forced rediscoveries of the app's log sources (as every 30 s in production)
    leave exactly as many fds open on the log as one: the recorder's single reader."""
    _, r = pod
    watch = r.sidecar.deps.parts["recorder"].watch
    deadline = time.monotonic() + 10
    while not any(b.readers for b in watch.boxes.values()):  # the first discovery
        assert time.monotonic() < deadline, "the recorder never watched the app's log"
        time.sleep(0.1)
    watch.sample()
    once = _log_fds()
    for _ in range(10):
        for box in watch.boxes.values():
            box.readers_at = 0.0  # due for rediscovery now, as after LOG_REDISCOVER_S
        watch.sample()
    assert _log_fds() == once == 1


@pytest.mark.parametrize("cursor", ["garbage", "ahead"])
def test_follow_logs_refused_for_its_recorder_cursor_leaks_no_log_fds(
    pod: tuple[App, Running], cursor: str
) -> None:
    """FollowLogs refused because of its recorder cursor (malformed, or ahead of the
    ring) leaves no reader open on the app's log: the file readers used to be opened
    first and were never closed when the recorder's reader then raised."""
    import grpc

    from agent._recorder_log import event_cursor
    from protos import logs_pb2

    app, r = pod
    watch = r.sidecar.deps.parts["recorder"].watch
    deadline = time.monotonic() + 10
    while not any(b.readers for b in watch.boxes.values()):  # the recorder's own reader
        assert time.monotonic() < deadline, "the recorder never watched the app's log"
        time.sleep(0.1)
    before = _log_fds()
    value = event_cursor(10**12) if cursor == "ahead" else cursor
    req = logs_pb2.FollowLogsRequest(
        container={"id": app.container_id}, cursors={"recorder": value}, follow=True
    )
    for _ in range(10):
        with pytest.raises(grpc.RpcError) as e:
            list(r.client.logs.FollowLogs(req, metadata=r.client.metadata, timeout=5))
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT, e.value
    assert _log_fds() == before == 1
