"""The Overview screen: the pod at a glance.

Pod and containers (uptime, restarts), cgroup limits against usage as bars,
cpu and memory sparklines over the recorder's history, top processes,
listeners and recent events. Every section is fetched on its own in one
worker per refresh: a section the sidecar cannot serve (not built yet, no
access) shows why in place, and the others still fill in.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import ClassVar, TypeVar

import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Grid, Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Footer, Sparkline, Static

from protos import common_pb2, events_pb2, info_pb2, network_pb2, processes_pb2
from tui.client import Client, describe_rpc_error
from tui.messages import CONNECTED, ConnectionChanged
from tui.widgets.header import BorescopeHeader
from tui.widgets.overview_render import (
    OverviewData,
    primary_container,
    render_containers,
    render_events,
    render_limits,
    render_listeners,
    render_pod,
    render_processes,
    sample_series,
)

T = TypeVar("T")
REFRESH_S = 5.0
CALL_TIMEOUT_S = 4.0
TOP_N = 6
EVENTS_N = 8
HISTORY = timedelta(minutes=15)


def _section(errors: dict[str, str], name: str, call: Callable[[], T]) -> T | None:
    """Run one section's call; on failure note a one-line reason and return None."""
    try:
        return call()
    except grpc.RpcError as e:
        if e.code() == grpc.StatusCode.UNIMPLEMENTED:
            errors[name] = "not served by this sidecar yet"
        else:
            errors[name] = describe_rpc_error(e)
        return None


def fetch(client: Client, now: datetime | None = None) -> OverviewData:
    """Everything the Overview shows, one call per section (blocking: run in a worker)."""
    md, t = client.metadata, CALL_TIMEOUT_S
    errors: dict[str, str] = {}
    now = now or datetime.now(UTC)
    info = _section(
        errors,
        "pod",
        lambda: client.info.GetInfo(info_pb2.GetInfoRequest(), timeout=t, metadata=md),
    )
    primary = primary_container(info)
    sel = common_pb2.ContainerSelector(id=primary.id if primary else "")
    cgroup = None
    if primary is not None and primary.root_process.pid:
        detail = _section(
            errors,
            "limits",
            lambda: client.processes.GetProcess(
                processes_pb2.GetProcessRequest(ref=primary.root_process, sections=["cgroup"]),
                timeout=t,
                metadata=md,
            ),
        )
        cgroup = detail.cgroup if detail is not None and detail.HasField("cgroup") else None
    procs = _section(
        errors,
        "processes",
        lambda: client.processes.ListProcesses(
            processes_pb2.ListProcessesRequest(
                container=sel,
                sort=processes_pb2.PROCESS_SORT_CPU,
                descending=True,
                page=common_pb2.PageRequest(page_size=TOP_N),
                cheap=True,
            ),
            timeout=t,
            metadata=md,
        ),
    )
    socks = _section(
        errors,
        "listeners",
        lambda: client.network.ListSockets(
            network_pb2.ListSocketsRequest(
                listening_only=True, page=common_pb2.PageRequest(page_size=20)
            ),
            timeout=t,
            metadata=md,
        ),
    )
    events = _section(errors, "events", lambda: _recent_events(client))
    since = now - HISTORY
    samples = _section(
        errors,
        "history",
        lambda: client.events.GetSamples(
            events_pb2.GetSamplesRequest(since=_timestamp(since), container=sel),
            timeout=t,
            metadata=md,
        ),
    )
    return OverviewData(
        now=now,
        info=info,
        cgroup=cgroup,
        processes=list(procs.processes)[:TOP_N] if procs else [],
        listeners=list(socks.sockets) if socks else [],
        events=events or [],
        samples=list(samples.samples) if samples else [],
        errors=errors,
    )


def _timestamp(when: datetime) -> Timestamp:
    ts = Timestamp()
    ts.FromDatetime(when)
    return ts


def _recent_events(client: Client) -> list[events_pb2.Event]:
    """The last EVENTS_N events from the ring (not following: the stream ends)."""
    stream = client.events.FollowEvents(
        events_pb2.FollowEventsRequest(limit=EVENTS_N, follow=False),
        timeout=CALL_TIMEOUT_S,
        metadata=client.metadata,
    )
    out: list[events_pb2.Event] = []
    try:
        for batch in stream:
            out.extend(batch.events)
            if len(out) >= EVENTS_N or batch.live:
                break
    finally:
        stream.cancel()  # type: ignore[no-untyped-call]
    return out[-EVENTS_N:]


class OverviewScreen(Screen[None]):
    """The pod at a glance; refreshes every few seconds while shown."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("r", "refresh", "Refresh", tooltip="Fetch everything again now."),
    ]
    DEFAULT_CSS = """
    OverviewScreen Grid { grid-size: 2; grid-gutter: 0 1; height: auto; }
    OverviewScreen .panel {
        height: auto; border: round $primary-darken-1; padding: 0 1;
        border-title-color: $text-accent;
    }
    OverviewScreen #ov-spark { height: auto; }
    OverviewScreen #ov-spark Vertical { height: 4; width: 1fr; padding: 0 1; }
    OverviewScreen Sparkline { height: 2; }
    OverviewScreen .label { height: 1; color: $text-muted; }
    """

    def __init__(self) -> None:
        super().__init__()
        self.data: OverviewData | None = None
        self.frozen = False
        self._timer: Timer | None = None

    def compose(self) -> ComposeResult:
        yield BorescopeHeader()
        with VerticalScroll():
            with Grid(id="ov-grid"):
                yield self._panel("ov-pod", "Pod")
                yield self._panel("ov-limits", "Limits (cgroup)")
            yield self._panel("ov-containers", "Containers")
            with Horizontal(id="ov-spark"):
                with Vertical():
                    yield Static("cpu", id="ov-cpu-label", classes="label", markup=False)
                    yield Sparkline([], id="ov-cpu")
                with Vertical():
                    yield Static("memory", id="ov-mem-label", classes="label", markup=False)
                    yield Sparkline([], id="ov-mem")
            with Grid(id="ov-grid2"):
                yield self._panel("ov-procs", "Top processes")
                yield self._panel("ov-listen", "Listeners")
            yield self._panel("ov-events", "Recent events")
        yield Footer()

    @staticmethod
    def _panel(pid: str, title: str) -> Static:
        s = Static("loading…", id=pid, classes="panel", markup=False)
        s.border_title = title
        return s

    def on_mount(self) -> None:
        self._timer = self.set_interval(REFRESH_S, self.action_refresh)
        self.action_refresh()

    def on_screen_resume(self) -> None:
        if self._timer is not None and not self.frozen:
            self._timer.resume()
            self.action_refresh()

    def on_screen_suspend(self) -> None:
        if self._timer is not None:
            self._timer.pause()

    def on_connection_changed(self, msg: ConnectionChanged) -> None:
        if msg.state == CONNECTED and msg.reconnected:
            self.action_refresh()

    def action_refresh(self) -> None:
        """Fetch everything again now."""
        if not self.frozen:
            self._fetch(self.app.client)  # type: ignore[attr-defined]

    @work(thread=True, exclusive=True, exit_on_error=False, group="overview")
    def _fetch(self, client: Client) -> None:
        data = fetch(client)
        self.app.call_from_thread(self._apply, data)

    def _apply(self, data: OverviewData) -> None:
        if not self.frozen:
            self.show(data)

    def freeze(self, data: OverviewData) -> None:
        """Show ``data`` and stop refreshing (snapshot tests, and a paused view)."""
        self.frozen = True
        if self._timer is not None:
            self._timer.pause()
        self.workers.cancel_group(self, "overview")
        self.show(data)

    def show(self, data: OverviewData) -> None:
        """Draw ``data`` into every panel."""
        self.data = data
        width = max(20, self.size.width // 2 - 4)
        self.query_one("#ov-pod", Static).update(render_pod(data))
        self.query_one("#ov-limits", Static).update(render_limits(data, width))
        self.query_one("#ov-containers", Static).update(render_containers(data))
        self.query_one("#ov-procs", Static).update(render_processes(data))
        self.query_one("#ov-listen", Static).update(render_listeners(data))
        self.query_one("#ov-events", Static).update(render_events(data))
        cpu, mem, cpu_label, mem_label = sample_series(data)
        self.query_one("#ov-cpu", Sparkline).data = cpu
        self.query_one("#ov-mem", Sparkline).data = mem
        self.query_one("#ov-cpu-label", Static).update(cpu_label)
        self.query_one("#ov-mem-label", Static).update(mem_label)
