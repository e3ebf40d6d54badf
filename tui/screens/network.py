"""The Network screen: the pod's network namespace as the app sees it.

Tabs: connections (listeners, counts by state, top remotes), interfaces and
routes, DNS config, kernel counters with per-second sparklines, and a probe
form. Refreshes every few seconds while shown; every call runs in a worker
and every string from the target is sanitised before it reaches the screen.
"""

from __future__ import annotations

from typing import ClassVar

import grpc
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import DataTable, Footer, Input, Sparkline, Static, TabbedContent, TabPane

from tui.client import Client, describe_rpc_error
from tui.messages import CONNECTED, ConnectionChanged
from tui.sanitize import sanitize
from tui.widgets import net_format as fmt
from tui.widgets.header import BorescopeHeader
from tui.widgets.net_data import CounterHistory, NetData, fetch, fetch_sockets, probe
from tui.widgets.net_sockets import SocketTable

REFRESH_S = 5.0
SPARK_COUNTERS = ("Tcp.RetransSegs", "TcpExt.ListenOverflows", "Tcp.ActiveOpens", "Tcp.EstabResets")


class NetworkScreen(Screen[None]):
    """Sockets, interfaces, routes, DNS, counters and probes of the pod."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("r", "refresh", "Refresh", tooltip="Fetch everything again now."),
        Binding(
            "c",
            "tab('net-conn')",
            "Conns",
            tooltip="Listeners and connections by state and remote.",
        ),
        Binding(
            "s",
            "tab('net-sockets')",
            "Sockets",
            tooltip="Every socket, filterable (Enter on a remote opens it filtered).",
        ),
        Binding("i", "tab('net-ifaces')", "Ifaces", tooltip="Interfaces and routes."),
        Binding(
            "d", "tab('net-dns')", "DNS", tooltip="The app's resolv.conf, hosts, nsswitch.conf."
        ),
        Binding("k", "tab('net-counters')", "Counters", tooltip="Kernel counters with rates."),
        Binding("p", "probe_form", "Probe", tooltip="Probe DNS, TCP or HTTP from the pod."),
    ]
    CSS_PATH = "network.tcss"

    def __init__(self) -> None:
        super().__init__()
        self.data: NetData | None = None
        self.history = CounterHistory()
        self._timer: Timer | None = None
        self._static_loaded = False
        self.last_probe = ""

    def compose(self) -> ComposeResult:
        yield BorescopeHeader()
        with TabbedContent(initial="net-conn"):
            with TabPane("Connections", id="net-conn"), VerticalScroll():
                yield Static("loading…", id="net-states", markup=False)
                yield self._table("net-listen", "Listeners")
                yield self._table("net-remotes", "Connections by remote")
            with TabPane("Sockets", id="net-sockets"):
                yield SocketTable(id="net-socket-table")
            with TabPane("Interfaces & routes", id="net-ifaces"), VerticalScroll():
                yield self._table("net-iface-table", "Interfaces")
                yield self._table("net-routes", "Routes")
            with TabPane("DNS", id="net-dns"), VerticalScroll():
                yield Static("loading…", id="net-dns-text", markup=False)
            with TabPane("Counters", id="net-counters"), VerticalScroll():
                with Horizontal(id="net-sparks"):
                    for i, label in enumerate(SPARK_COUNTERS):
                        with Vertical():
                            yield Static(
                                f"{label} /s",
                                id=f"net-spark-label-{i}",
                                classes="label",
                                markup=False,
                            )
                            yield Sparkline([], id=f"net-spark-{i}")
                yield self._table("net-counter-table", "Key counters")
            with TabPane("Probe", id="net-probe"), Vertical():
                yield Input(
                    placeholder="dns NAME | tcp HOST:PORT | http(s)://URL [-k: no TLS verify]   (Enter runs it)",
                    id="net-probe-input",
                )
                yield Static("", id="net-probe-result", markup=False)
        yield Footer()

    @staticmethod
    def _table(table_id: str, title: str) -> DataTable[str]:
        t: DataTable[str] = DataTable(id=table_id, zebra_stripes=True, cursor_type="row")
        t.border_title = title
        return t

    def on_mount(self) -> None:
        self.query_one("#net-listen", DataTable).add_columns(*fmt.SOCKET_HEADERS)
        self.query_one("#net-remotes", DataTable).add_columns("REMOTE", "CONNS", "STATES")
        self.query_one("#net-iface-table", DataTable).add_columns(
            "NAME", "STATE", "MTU", "ADDRESSES", "RX BYTES", "TX BYTES", "ERR/DROP"
        )
        self.query_one("#net-routes", DataTable).add_columns(*fmt.ROUTE_HEADERS)
        self.query_one("#net-counter-table", DataTable).add_columns(
            "COUNTER", "VALUE", "RATE /s", "MEANING"
        )
        self._timer = self.set_interval(REFRESH_S, self._tick)
        self.action_refresh()

    def on_screen_resume(self) -> None:
        if self._timer is not None:
            self._timer.resume()
            self.action_refresh()

    def on_screen_suspend(self) -> None:
        if self._timer is not None:
            self._timer.pause()

    def on_connection_changed(self, msg: ConnectionChanged) -> None:
        if msg.state == CONNECTED and msg.reconnected:
            self._static_loaded = False
            self.action_refresh()

    # -- actions and hooks ------------------------------------------------------

    def action_refresh(self) -> None:
        """Fetch everything again now (routes and DNS included)."""
        self._refresh(static=True)

    def _tick(self) -> None:
        # Timed refresh: routes and DNS config rarely change; fetched once (and on "r").
        self._refresh(static=not self._static_loaded)

    def _refresh(self, static: bool) -> None:
        self._fetch(self.app.client, static=static)  # type: ignore[attr-defined]
        if self.query_one(TabbedContent).active == "net-sockets":
            self._fetch_sockets(self.app.client)  # type: ignore[attr-defined]

    def action_tab(self, tab: str) -> None:
        """Show one tab."""
        self.query_one(TabbedContent).active = tab

    @on(TabbedContent.TabActivated)
    def _tab_shown(self, event: TabbedContent.TabActivated) -> None:
        # The full listing is fetched only while its tab is shown (it can be big).
        if event.pane.id == "net-sockets":
            self._fetch_sockets(self.app.client)  # type: ignore[attr-defined]

    @on(DataTable.RowSelected, "#net-remotes")
    def _remote_selected(self, event: DataTable.RowSelected) -> None:
        """Enter on a remote: the Sockets tab, filtered to that endpoint."""
        remote = str(event.data_table.get_row(event.row_key)[0])
        if remote.endswith(" (inbound)"):  # clients of a listener: any of their ports
            address = remote.removesuffix(" (inbound)")
            remote = f"[{address}]:" if ":" in address else f"{address}:"
        self.show_sockets(f"remote:{remote}")

    def show_sockets(self, filter_text: str = "") -> None:
        """Open the Sockets tab with ``filter_text`` as its filter."""
        self.query_one(SocketTable).set_filter(filter_text)
        self.action_tab("net-sockets")

    def action_probe_form(self) -> None:
        """Open the probe form."""
        self.action_tab("net-probe")
        self.query_one("#net-probe-input", Input).focus()

    def run_probe(self, spec: str) -> None:
        """Run a probe ('dns NAME', 'tcp HOST:PORT', 'http URL') and show its result."""
        self.action_tab("net-probe")
        self.query_one("#net-probe-input", Input).value = spec
        self._start_probe(spec)

    @on(Input.Submitted, "#net-probe-input")
    def _submitted(self, event: Input.Submitted) -> None:
        self._start_probe(event.value)

    def _start_probe(self, spec: str) -> None:
        try:
            fmt.parse_probe_spec(spec)
        except ValueError as e:
            self.notify(sanitize(str(e)), severity="error", markup=False)
            return
        self.query_one("#net-probe-result", Static).update(f"probing {sanitize(spec)} …")
        self._probe(self.app.client, spec)  # type: ignore[attr-defined]

    # -- workers ----------------------------------------------------------------

    @work(thread=True, exclusive=True, exit_on_error=False, group="net-probe")
    def _probe(self, client: Client, spec: str) -> None:
        try:
            text = probe(client, spec)
        except grpc.RpcError as e:
            self.app.call_from_thread(self._probe_failed, describe_rpc_error(e))
            return
        self.app.call_from_thread(self._probe_done, text)

    def _probe_done(self, text: str) -> None:
        self.last_probe = text
        self.query_one("#net-probe-result", Static).update(sanitize(text, keep_newlines=True))

    def _probe_failed(self, message: str) -> None:
        self.last_probe = message
        self.query_one("#net-probe-result", Static).update(sanitize(message))
        self.notify(sanitize(message), severity="error", markup=False)

    @work(thread=True, exclusive=True, exit_on_error=False, group="net-sockets")
    def _fetch_sockets(self, client: Client) -> None:
        try:
            socks, cut = fetch_sockets(client)
        except grpc.RpcError as e:
            msg = describe_rpc_error(e)
            self.app.call_from_thread(
                self.notify, f"sockets: {sanitize(msg)}", severity="error", markup=False
            )
            return
        self.app.call_from_thread(self.query_one(SocketTable).load, socks, cut)

    @work(thread=True, exclusive=True, exit_on_error=False, group="net-refresh")
    def _fetch(self, client: Client, static: bool) -> None:
        data = fetch(client, static=static)
        self.app.call_from_thread(self.show, data)

    # -- drawing ----------------------------------------------------------------

    def freeze(self, data: NetData) -> None:
        """Show ``data`` and stop refreshing (snapshot tests, like the Overview's)."""
        if self._timer is not None:
            self._timer.pause()
        self.workers.cancel_group(self, "net-refresh")
        self.show(data)

    def show(self, data: NetData) -> None:
        """Draw one refresh; sections that failed say why in place."""
        self.data = data
        if data.routes is not None or data.dns is not None:
            self._static_loaded = True
        for name, err in data.errors.items():
            if name == "sockets":
                self.query_one("#net-states", Static).update(f"sockets: {sanitize(err)}")
        if data.summary is not None:
            self._show_summary(data)
        if data.interfaces is not None:
            self._show_interfaces(data)
        if data.routes is not None:
            rows = [fmt.route_row(r) for r in data.routes.routes]
            self._fill("#net-routes", rows)
        if data.dns is not None:
            self._show_dns(data)
        if data.counters is not None:
            self.history.add(data.counters)
            self._show_counters(data)
        if data.errors:
            self.notify(
                "; ".join(f"{k}: {sanitize(v)}" for k, v in data.errors.items()),
                severity="error",
                markup=False,
            )

    def _fill(self, selector: str, rows: list[list[str]]) -> None:
        # Small tables (tens of rows): a clear and refill keeps them simple.
        table = self.query_one(selector, DataTable)
        table.clear()
        table.add_rows(rows)

    def _show_summary(self, data: NetData) -> None:
        s = data.summary
        assert s is not None
        states = "  ".join(f"{x.state} {x.count}" for x in s.by_state) or "no TCP/UDP sockets"
        self.query_one("#net-states", Static).update(f"{s.total} TCP/UDP sockets   {states}")
        self._fill("#net-listen", [fmt.socket_row(x) for x in s.listeners])
        self._fill("#net-remotes", [fmt.remote_row(r) for r in s.by_remote])

    def _show_interfaces(self, data: NetData) -> None:
        resp = data.interfaces
        assert resp is not None
        rows = [
            [
                sanitize(i.name),
                i.oper_state,
                str(i.mtu or "?"),
                fmt.address_list(i) or "-",
                f"{i.rx_bytes:,}",
                f"{i.tx_bytes:,}",
                f"{i.rx_errors + i.tx_errors}/{i.rx_dropped + i.tx_dropped}",
            ]
            for i in resp.interfaces
        ]
        self._fill("#net-iface-table", rows)

    def _show_dns(self, data: NetData) -> None:
        d = data.dns
        assert d is not None
        parts = [
            f"nameservers: {' '.join(d.nameservers) or '(none)'}",
            f"search:      {' '.join(d.search) or '-'}",
            f"options:     {' '.join(d.options) or '-'}",
            "",
            "── /etc/resolv.conf",
            d.resolv_conf.rstrip(),
            "",
            "── /etc/hosts",
            d.hosts.rstrip(),
            "",
            "── /etc/nsswitch.conf",
            d.nsswitch_conf.rstrip(),
        ]
        parts += [f"(unavailable) {u.field}: {u.reason}" for u in d.unavailable]
        self.query_one("#net-dns-text", Static).update(
            sanitize("\n".join(parts), keep_newlines=True)
        )

    def _show_counters(self, data: NetData) -> None:
        assert data.counters is not None
        rows = []
        for label, counter, meaning in fmt.key_counters(data.counters.counters):
            rate = self.history.last_rate(label)
            rows.append(
                [
                    label,
                    str(counter.value) if counter else "?",
                    "" if rate is None else f"{rate:.1f}",
                    meaning,
                ]
            )
        self._fill("#net-counter-table", rows)
        for i, label in enumerate(SPARK_COUNTERS):
            series = self.history.series(label)
            # A flat line is drawn as full bars by Sparkline; all-zero means
            # "nothing happened", so show no bars (the label says 0.0).
            self.query_one(f"#net-spark-{i}", Sparkline).data = series if any(series) else []
            now = f" now {series[-1]:.1f}" if series else ""
            self.query_one(f"#net-spark-label-{i}", Static).update(f"{label} /s{now}")
