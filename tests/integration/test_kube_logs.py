"""The app's stdout/stderr through pods/log against the fake API server."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.integration.fake_apiserver import FakeApiServer, make_pod
from tui.kube import config as kube_config
from tui.kube.config import Cluster
from tui.kube.errors import KubeError
from tui.kube.logs import LogLine, PodLogs, parse_line

CONTAINERS = [{"name": "app", "image": "app:1"}, {"name": "borescope", "image": "bs:1"}]


@pytest.fixture
def api() -> Iterator[FakeApiServer]:
    srv = FakeApiServer().start()
    srv.state.add_pod(make_pod("web-0", "shop", containers=[dict(c) for c in CONTAINERS]))
    yield srv
    srv.stop()


@pytest.fixture
def cluster(api: FakeApiServer, tmp_path: Path) -> Iterator[Cluster]:
    c = kube_config.load(kubeconfig=api.kubeconfig(str(tmp_path / "kc"), namespace="shop"))
    yield c
    c.close()


def take(it: Iterator[LogLine], n: int, timeout: float = 10.0) -> list[LogLine]:
    """The next ``n`` lines, failing instead of hanging."""
    out: list[LogLine] = []
    done = threading.Event()

    def run() -> None:
        for line in it:
            out.append(line)
            if len(out) == n:
                break
        done.set()

    threading.Thread(target=run, daemon=True).start()
    assert done.wait(timeout), f"got {len(out)} of {n} lines: {out}"
    return out


def test_follow_with_timestamps_and_container(api: FakeApiServer, cluster: Cluster) -> None:
    """Existing and newly written lines arrive in order with the kubelet's timestamps,
    and the request names the container and asks for timestamps and follow."""
    t0 = 1_800_000_000.25
    api.state.append_log("shop", "web-0", "app", "first", t0)
    api.state.append_log("shop", "web-0", "app", "second", t0 + 1)
    logs = PodLogs(cluster, "shop", "web-0", "app")
    it = iter(logs)
    got = take(it, 2)
    api.state.append_log("shop", "web-0", "app", "third", t0 + 2)
    got += take(it, 1)
    logs.close()
    assert [g.text for g in got] == ["first", "second", "third"]
    assert got[0].time == datetime.fromtimestamp(t0, UTC)
    assert got[0].stamp == "2027-01-15T08:00:00.250000000Z"
    q = api.state.seen("GET", "/pods/web-0/log")[0]["query"]
    assert q["container"] == ["app"] and q["timestamps"] == ["true"] and q["follow"] == ["true"]


def test_resume_after_drop_has_no_duplicates_and_no_loss(
    api: FakeApiServer, cluster: Cluster
) -> None:
    """A dropped stream resumes from sinceTime (whole seconds, inclusive on the server):
    lines of that second already shown are skipped, new ones in the same second are kept,
    including a genuine repeat of an identical line."""
    t0 = 1_800_000_100.0
    for i, text in enumerate(["a", "b", "same", "same"]):
        api.state.append_log("shop", "web-0", "app", text, t0 + 0.1 * i)
    logs = PodLogs(cluster, "shop", "web-0", "app")
    it = iter(logs)
    got = take(it, 4)
    api.state.drop_log_streams()
    time.sleep(0.1)
    # Written while disconnected: same second as the last seen line, then later.
    api.state.append_log(
        "shop", "web-0", "app", "same", t0 + 0.3
    )  # identical stamp+text: a real repeat
    api.state.append_log("shop", "web-0", "app", "c", t0 + 0.5)
    api.state.append_log("shop", "web-0", "app", "d", t0 + 2)
    got += take(it, 3)
    logs.close()
    assert [g.text for g in got] == ["a", "b", "same", "same", "same", "c", "d"]
    assert logs.reconnects >= 1
    second = api.state.seen("GET", "/pods/web-0/log")[1]["query"]
    assert second["sinceTime"] == ["2027-01-15T08:01:40Z"]


def test_previous_container(api: FakeApiServer, cluster: Cluster) -> None:
    """previous=true returns the terminated instance's lines and ends (no follow)."""
    api.state.logs[("shop", "web-0", "app", True)] = [(1_800_000_000.0, "panic: boom")]
    got = list(PodLogs(cluster, "shop", "web-0", "app", previous=True))
    assert [g.text for g in got] == ["panic: boom"]
    q = api.state.seen("GET", "/log")[0]["query"]
    assert q["previous"] == ["true"] and "follow" not in q


def test_no_previous_container_is_one_clear_error(api: FakeApiServer, cluster: Cluster) -> None:
    """Asking for a previous instance that does not exist gives the API's reason."""
    with pytest.raises(KubeError, match="previous terminated container"):
        list(PodLogs(cluster, "shop", "web-0", "app", previous=True))


def test_invalid_utf8_and_long_lines_are_bounded(api: FakeApiServer, cluster: Cluster) -> None:
    """Invalid UTF-8 becomes U+FFFD; a line longer than max_line is cut with a marker."""
    api.state.append_log("shop", "web-0", "app", "bad \udcff byte", 1_800_000_000.0)
    api.state.append_log("shop", "web-0", "app", "x" * 5000, 1_800_000_001.0)
    api.state.append_log("shop", "web-0", "app", "after", 1_800_000_002.0)
    got = list(PodLogs(cluster, "shop", "web-0", "app", follow=False, max_line=1000))
    assert got[0].text == "bad \ufffd byte"
    assert got[1].text.endswith("…[line cut]") and len(got[1].text) < 1100
    assert got[2].text == "after"


def test_forbidden_logs_name_the_permission(api: FakeApiServer, cluster: Cluster) -> None:
    """A 403 on pods/log says which verb and resource are missing."""
    api.state.forbidden.add(("get", "pods/log"))
    with pytest.raises(KubeError, match="needs get on pods/log in namespace shop"):
        list(PodLogs(cluster, "shop", "web-0", "app", follow=False))


def test_parse_line_without_timestamp() -> None:
    """A line with no parsable timestamp is kept whole, with no time."""
    line = parse_line(b"no-stamp here")
    assert line.time is None and line.text == "no-stamp here"


def test_app_logs_follow_every_app_container_not_the_sidecar(
    api: FakeApiServer, cluster: Cluster
) -> None:
    """app_logs gives one follower per app container, none for the sidecar."""
    from tui.kube.logs import app_logs
    from tui.kube.targets import parse_target, resolve

    target = resolve(cluster, parse_target("pod/web-0"), "shop")
    followers = app_logs(cluster, target)
    assert [f.container for f in followers] == ["app"]
    for f in followers:
        f.close()
