"""The Network screen, driven with a Pilot against a real sidecar watching a test netns."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from textual.widgets import DataTable, Sparkline, Static

from protos import network_pb2
from sidecar.config import Config
from tests.integration.test_network_netns import NetnsPod, make_netns_pod
from tests.tui.test_app import notes, wait_for
from tui.app import make_app
from tui.screens.network import NetworkScreen
from tui.widgets.net_data import CounterHistory
from tui.widgets.net_format import parse_probe_spec
from tui.widgets.net_sockets import SocketTable, matches


@pytest.fixture(scope="module")
def net_pod() -> Iterator[NetnsPod]:
    yield from make_netns_pod(Config(allow_probes=True))


def rows(screen: NetworkScreen, selector: str) -> list[list[str]]:
    table = screen.query_one(selector, DataTable)
    return [[str(c) for c in table.get_row(k)] for k in table.rows]


def text(screen: NetworkScreen, selector: str) -> str:
    return str(screen.query_one(selector, Static).content)


async def open_network(app: Any, pilot: Any) -> NetworkScreen:
    await pilot.press("4")
    await wait_for(pilot, lambda: isinstance(app.screen, NetworkScreen))
    screen = app.screen
    assert isinstance(screen, NetworkScreen)
    await wait_for(pilot, lambda: screen.data is not None and screen._static_loaded, timeout=10)
    return screen


async def test_network_screen_shows_the_pods_network(net_pod: NetnsPod) -> None:
    """Key 4 opens the screen; it lists the app's listeners with owners, counts by state and
    remote, interfaces and routes of the pod's namespace, and the app's DNS config."""
    app = make_app(net_pod.sidecar.client)
    async with app.run_test(size=(140, 45)) as pilot:
        screen = await open_network(app, pilot)
        listen = rows(screen, "#net-listen")
        tcp4 = next(r for r in listen if r[4] == f"127.0.0.1:{net_pod.info['tcp4']}")
        assert tcp4[1] == "LISTEN" and f"({net_pod.pid},fd=" in tcp4[6]
        assert "ESTABLISHED 12" in text(screen, "#net-states")
        remotes = {r[0]: r[1] for r in rows(screen, "#net-remotes")}
        assert remotes[f"127.0.0.1:{net_pod.info['tcp4']}"] == "5"
        await pilot.press("i")
        ifaces = {r[0]: r for r in rows(screen, "#net-iface-table")}
        assert "10.77.0.1/24" in ifaces["bsveth0"][3] and ifaces["bsveth0"][2] == "1400"
        assert any(
            r[1] == "10.78.0.0/16" and r[2] == "10.77.0.2" for r in rows(screen, "#net-routes")
        )
        await pilot.press("d")
        dns = text(screen, "#net-dns-text")
        assert dns.splitlines()[0] == "nameservers: 127.0.0.1"  # real lines, not escaped \n
        assert "10.77.0.9 db.example.test" in dns.splitlines()
        assert not [n for n in notes(app) if "error" in n.lower()]


async def test_counters_get_rates_and_sparklines(net_pod: NetnsPod) -> None:
    """After two refreshes with traffic between them, the counters tab shows per-second rates
    and the ActiveOpens sparkline has a point."""
    app = make_app(net_pod.sidecar.client)
    async with app.run_test(size=(140, 45)) as pilot:
        screen = await open_network(app, pilot)
        await pilot.press("k")
        assert net_pod.app_command(f"connect {net_pod.info['tcp4']} 4") == "ok"
        before = screen.data
        screen.action_refresh()
        await wait_for(pilot, lambda: screen.data is not before, timeout=10)
        spark = screen.query_one("#net-spark-2", Sparkline)  # Tcp.ActiveOpens
        assert list(spark.data or []) and max(spark.data or [0]) > 0
        table = {r[0]: r for r in rows(screen, "#net-counter-table")}
        assert float(table["Tcp.ActiveOpens"][2]) > 0


async def test_probe_form_and_run_probe_hook(net_pod: NetnsPod) -> None:
    """The probe form runs a TCP probe from the pod (reaching a listener only the pod has);
    a malformed spec is an error toast, not a crash."""
    app = make_app(net_pod.sidecar.client)
    async with app.run_test(size=(140, 45)) as pilot:
        screen = await open_network(app, pilot)
        screen.run_probe(f"tcp [::1]:{net_pod.info['tcp6']}")
        await wait_for(pilot, lambda: "connected" in screen.last_probe, timeout=10)
        assert "connected to ::1" in text(screen, "#net-probe-result")
        screen.run_probe("dns svc")  # nothing serves DNS in this pod: refused, per server
        await wait_for(pilot, lambda: screen.last_probe.startswith("dns svc"), timeout=10)
        lines = text(screen, "#net-probe-result").splitlines()
        assert len(lines) == 2 and "127.0.0.1" in lines[1] and "connection refused" in lines[1]
        await pilot.press("p")
        await pilot.press(*"tcp nonsense", "enter")
        await wait_for(pilot, lambda: any("HOST:PORT" in n for n in notes(app)))


async def test_probes_disabled_show_the_switch() -> None:
    """With probes off, running one shows the sidecar's reason (naming allow_probes) as an error."""
    for pod in make_netns_pod(Config()):
        app = make_app(pod.sidecar.client)
        async with app.run_test(size=(140, 45)) as pilot:
            screen = await open_network(app, pilot)
            screen.run_probe("http http://127.0.0.1:9/")
            await wait_for(
                pilot, lambda app=app: any("allow_probes" in n for n in notes(app)), timeout=10
            )
            assert "PERMISSION_DENIED" in screen.last_probe


def test_probe_spec_parsing() -> None:
    """Probe specs parse into (kind, target, port); bad ones raise with the expected shape."""
    assert parse_probe_spec("tcp db:5432") == ("tcp", "db", 5432, False)
    assert parse_probe_spec("tcp [fd00::1]:80") == ("tcp", "fd00::1", 80, False)
    assert parse_probe_spec("dns api.internal") == ("dns", "api.internal", 0, False)
    assert parse_probe_spec("http example.com/x") == ("http", "http://example.com/x", 0, False)
    assert parse_probe_spec("https https://a/ -k") == ("http", "https://a/", 0, True)
    for bad in ("", "ping x", "tcp host", "tcp :80", "dns"):
        with pytest.raises(ValueError):
            parse_probe_spec(bad)


def test_counter_history_rates_are_bounded() -> None:
    """Rates are per second between samples, never negative (counter reset), and bounded in length."""
    h = CounterHistory(size=3)

    def sample(v: int) -> network_pb2.Counters:
        return network_pb2.Counters(
            counters=[network_pb2.Counter(group="Tcp", name="RetransSegs", value=v)]
        )

    h.add(sample(100), now=0.0)
    h.add(sample(150), now=5.0)
    assert h.series("Tcp.RetransSegs") == [10.0]
    h.add(sample(10), now=10.0)  # counter went backwards (namespace recreated)
    assert h.last_rate("Tcp.RetransSegs") == 0.0
    for i in range(5):
        h.add(sample(10 + i), now=11.0 + i)
    assert len(h.series("Tcp.RetransSegs")) == 3


async def test_sockets_tab_filters_and_remote_drill_down(net_pod: NetnsPod) -> None:
    """The Sockets tab lists every socket of the pod; its filter keeps rows with all words
    (optionally per column); Enter on a remote in Connections opens Sockets filtered to it."""
    app = make_app(net_pod.sidecar.client)
    async with app.run_test(size=(140, 45)) as pilot:
        screen = await open_network(app, pilot)
        table = screen.query_one(SocketTable)
        await pilot.press("s")
        await wait_for(pilot, lambda: len(table.rows) > 10, timeout=10)
        assert any(r[0] == "u_str" and r[4] == net_pod.info["unix"] for r in table.rows)
        table.set_filter("tcp6 ESTABLISHED")
        assert len(table.shown()) == 2 and all(r[0] == "tcp6" for r in table.shown())
        await pilot.press("c")
        remotes = screen.query_one("#net-remotes", DataTable)
        target = f"127.0.0.1:{net_pod.info['tcp4']}"
        row = next(i for i, k in enumerate(remotes.rows) if remotes.get_row(k)[0] == target)
        remotes.focus()
        remotes.move_cursor(row=row)
        await pilot.press("enter")
        await wait_for(pilot, lambda: table.filter_text == f"remote:{target}")
        assert table.shown() and all(r[5] == target for r in table.shown())
        assert len(table.shown()) == sum(1 for r in table.rows if r[5] == target)
        table.set_filter("state:listen proc:python")
        assert {r[1] for r in table.shown()} == {"LISTEN"}


def test_socket_filter_words() -> None:
    """Unqualified words match anywhere; 'column:value' words match only that column."""
    row = ["tcp", "ESTABLISHED", "0", "0", "10.0.0.2:41000", "10.0.0.9:5432", "java(7,fd=9)"]
    assert matches(row, ["established", ":5432"])
    assert matches(row, ["remote:10.0.0.9:5432", "proc:java"])
    assert not matches(row, ["local:5432"])
    assert not matches(row, ["state:listen"])
    assert matches(row, ["unknowncolumn:x"]) is False  # not a column: a plain word, absent
