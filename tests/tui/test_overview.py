"""The Overview screen: live against a real sidecar, and its drawing on fixed data."""

from __future__ import annotations

import io
import subprocess
import sys
from collections.abc import Iterator

import pytest
from rich.console import Console, RenderableType

from sidecar.config import Config
from tests.conftest import Running, start_sidecar
from tests.tui.conftest import fixed_overview, screen_text
from tests.tui.test_app import wait_for
from tui.app import make_app
from tui.widgets.overview_render import (
    bar,
    duration,
    render_containers,
    render_events,
    render_limits,
    render_listeners,
    render_pod,
    render_processes,
    sample_series,
)

HOSTILE_COMM = "\x1b]52;c;aGk=\x07"


def plain(r: RenderableType, width: int = 100) -> str:
    c = Console(file=io.StringIO(), width=width, color_system=None, record=True)
    c.print(r)
    return c.export_text()


@pytest.fixture
def hostile_app() -> Iterator[subprocess.Popen[bytes]]:
    """A real process whose name (comm) is an OSC 52 clipboard write, with a child."""
    code = (
        f"open('/proc/self/comm','w').write({HOSTILE_COMM!r});"
        "import subprocess,time; c=subprocess.Popen(['sleep','300']); time.sleep(300)"
    )
    p = subprocess.Popen([sys.executable, "-c", code])
    yield p
    p.kill()
    p.wait()
    subprocess.run(["pkill", "-P", str(p.pid)], check=False)


@pytest.fixture
def hostile_sidecar(hostile_app: subprocess.Popen[bytes]) -> Iterator[Running]:
    r = start_sidecar(Config(local_root=hostile_app.pid, pod_name="ov-pod"))
    yield r
    r.client.close()
    r.sidecar.stop(0)


async def test_overview_live_shows_pod_containers_and_escapes_hostile_names(
    hostile_sidecar: Running,
) -> None:
    """Against a real sidecar: the pod and the containers (uptime, restarts) fill in, the
    top processes come from the Processes service, a section the sidecar does not serve
    says so in place, and a process named with an OSC 52 sequence shows escaped."""
    app = make_app(hostile_sidecar.client)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("6")
        await wait_for(
            pilot, lambda: "ov-pod" in screen_text(app) and "RESTARTS" in screen_text(app)
        )
        await wait_for(pilot, lambda: "\\x1b]52;c;aGk=\\x07" in screen_text(app))
        text = screen_text(app)
        assert "\x1b" not in text and "\x07" not in text
        for section in ("Pod", "Limits (cgroup)", "Containers", "Top processes", "Listeners"):
            assert section in text, section  # at most 8 container rows: nothing pushed off
        screen = app.screen
        data = screen.data  # type: ignore[attr-defined]
        assert data is not None and data.info.pod_name == "ov-pod"
        for name, err in data.errors.items():
            # Anything missing is explained in place, never a blank panel.
            assert err and name in ("limits", "processes", "listeners", "events", "history")
        if "processes" not in data.errors:
            assert data.processes, "the Processes service answered with no process"


async def test_overview_refresh_key_fetches_again(pilot_sidecar: Running) -> None:
    """`r` on the Overview fetches again: a new data object is shown."""
    app = make_app(pilot_sidecar.client)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("6")
        await wait_for(pilot, lambda: getattr(app.screen, "data", None) is not None)
        first = app.screen.data  # type: ignore[attr-defined]
        await pilot.press("r")
        await wait_for(pilot, lambda: app.screen.data is not first)  # type: ignore[attr-defined]


def test_limits_bars_against_cgroup() -> None:
    """Memory 401M of 512M is a 78% bar; cpu quota 0.5 cores throttled 26% of periods;
    pids 23/256; one OOM kill shown."""
    text = plain(render_limits(fixed_overview(), width=60))
    assert "78%" in text and "401.0M/512.0M" in text
    assert "limit 0.50 cores, throttled 26% of periods" in text
    assert "23/256" in text and "1 kills" in text


def test_bar_is_bounded_and_proportional() -> None:
    """A bar has exactly `width` cells, full at or over the limit, empty at 0."""
    assert bar(50, 100, 10).plain.startswith("█████░░░░░")
    assert bar(300, 100, 10).plain.startswith("█" * 10)
    assert bar(0, 0, 10).plain.startswith("░" * 10)


def test_crowded_pod_lists_eight_containers_then_a_count() -> None:
    """A pod with 20 containers: apps first, 8 rows, then how many more."""
    data = fixed_overview()
    assert data.info is not None
    extra = data.info.containers[0]
    for i in range(17):
        c = data.info.containers.add()
        c.CopyFrom(extra)
        c.name = f"app-{i}"
    text = plain(render_containers(data))
    assert "12 more" in text and "app-6" in text and "app-7" not in text


def test_containers_uptime_restarts_and_access() -> None:
    """Each container row has kind, pid count, uptime at the fixed clock, restarts, access."""
    text = plain(render_containers(fixed_overview()))
    assert "checkout" in text and "2h05m" in text
    assert "borescope" in text and "sidecar" in text and "42m00s" in text
    assert "pause" in text and "infra" in text and "3d04h" in text and "no access" in text


def test_pod_processes_listeners_events_and_sparklines() -> None:
    """Pod facts, top processes (hostile name escaped), listeners with owners, events with
    severity, and the cpu/memory series of the primary container."""
    data = fixed_overview()
    pod = plain(render_pod(data))
    assert "checkout-7d9f8b-x2x9z" in pod and "shop" in pod and "up 42m00s" in pod
    assert "3d04h, 2 restarts" in pod  # the pod's age: its oldest container
    procs = plain(render_processes(data))
    assert "48.5" in procs and "310.0M" in procs and "evil\\x1b]52;c;aGk=\\x07" in procs
    listen = plain(render_listeners(data))
    assert "0.0.0.0:8080" in listen and "7/checkout" in listen and "[::1]:9090" in listen
    events = plain(render_events(data))
    assert "CRIT" in events and "OOM kill" in events and "02:44:00" in events
    cpu, mem, cpu_label, _mem_label = sample_series(data)
    assert len(cpu) == len(mem) == 60
    assert "max 49.0%" in cpu_label.plain


def test_missing_sections_explain_themselves() -> None:
    """A section the sidecar cannot serve shows the reason instead of being blank."""
    data = fixed_overview()
    data.errors["listeners"] = "not served by this sidecar yet"
    data.samples = []
    data.errors["history"] = "PERMISSION_DENIED: no access"
    assert "not served by this sidecar yet" in plain(render_listeners(data))
    assert "PERMISSION_DENIED" in sample_series(data)[2].plain


@pytest.mark.parametrize(
    ("seconds", "text"), [(5, "5s"), (125, "2m05s"), (7500, "2h05m"), (90000, "1d01h")]
)
def test_duration(seconds: int, text: str) -> None:
    """Ages read like k9s: seconds, minutes+seconds, hours+minutes, days+hours."""
    assert duration(seconds) == text
