"""The Processes screen: a live, sortable process table with a detail pane.

The table refreshes every few seconds and is updated in place by row key
(pid:start_ticks) with ``update_cell``: rows are never cleared and re-added,
so the cursor, scroll position and selection survive a refresh. Selecting a
row loads the process's details (env, limits, cgroup, files, threads,
sockets) and starts a WatchProcess stream that feeds the cpu and rss
sparklines. Signals go through a confirmation dialog and carry the
process's start time, so they never reach a reused pid.
"""

from __future__ import annotations

import threading
from typing import Any, ClassVar

import grpc
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.coordinate import Coordinate
from textual.reactive import reactive
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import DataTable, Footer, Static
from textual.widgets.data_table import CellDoesNotExist, RowKey

from protos import common_pb2, info_pb2, processes_pb2
from tui.client import Client, describe_rpc_error
from tui.messages import CONNECTED, ConnectionChanged
from tui.sanitize import sanitize
from tui.widgets import process_format as fmt
from tui.widgets.header import BorescopeHeader
from tui.widgets.process_detail import ProcessDetail
from tui.widgets.process_signal import SignalDialog

REFRESH_S = 2.0
SELECT_DELAY_S = 0.25  # cursor moves faster than details can load: wait for it to rest
WATCH_INTERVAL_MS = 1000
CALL_TIMEOUT_S = 10.0


class ProcessesScreen(Screen[None]):
    """The pod's processes: sort, tree, container filter, details, sparklines, signals."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("s", "cycle_sort", "Sort", tooltip="Sort by cpu, mem, fds, threads, pid in turn."),
        Binding("o", "reverse", "Order", tooltip="Reverse the sort order."),
        Binding(
            "t", "toggle_tree", "Tree", tooltip="Show the process tree (parents above children)."
        ),
        Binding(
            "c",
            "cycle_container",
            "Container",
            tooltip="Show one container, then the next, then all.",
        ),
        Binding(
            "k", "signal", "Signal…", tooltip="Send a signal to the selected process (asks first)."
        ),
        Binding("r", "refresh", "Refresh", tooltip="List the processes again now."),
    ]
    CSS_PATH = "processes.tcss"

    sort: reactive[str] = reactive("cpu")
    """The column the table is sorted by (cpu, rss, fds, threads, pid)."""
    descending: reactive[bool] = reactive(True)
    """Largest first."""
    tree_view: reactive[bool] = reactive(False)
    """Show the process tree instead of the sorted list."""
    container: reactive[str] = reactive("")
    """Container id shown ("" = every container)."""

    def __init__(self) -> None:
        super().__init__()
        self.procs: dict[str, processes_pb2.Process] = {}
        self.shown: dict[str, dict[str, str]] = {}
        self.containers: list[info_pb2.Container] = []
        self.selected: processes_pb2.Process | None = None
        self.listings = 0
        self.total = 0
        self._exit_noted = ""
        self._last_hl: str | None = None  # row key of the last highlight acted on
        self._pending_pid: int | None = None
        self._timer: Timer | None = None
        self._select_timer: Timer | None = None
        self._watch_call: Any = None
        self._watch_lock = threading.Lock()

    def compose(self) -> ComposeResult:
        yield BorescopeHeader()
        yield Static("loading…", id="ps-status", markup=False)
        with Horizontal(id="ps-body"):
            with Vertical(id="ps-left"):
                table: DataTable[str] = DataTable(
                    id="ps-table", zebra_stripes=True, cursor_type="row"
                )
                yield table
            yield ProcessDetail()
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#ps-table", DataTable)
        for key, label in fmt.COLUMNS:
            table.add_column(label, key=key)
        self._timer = self.set_interval(REFRESH_S, self.action_refresh)
        self.action_refresh()

    def on_screen_resume(self) -> None:
        if self._timer is not None:
            self._timer.resume()
            self.action_refresh()
            p = self.selected
            if p is not None:  # the watch stopped while another screen was shown
                ref = common_pb2.ProcessRef(pid=p.ref.pid, start_ticks=p.ref.start_ticks)
                self._stop_watch()
                self._watch(self.app.client, ref)  # type: ignore[attr-defined]

    def on_screen_suspend(self) -> None:
        if self._timer is not None:
            self._timer.pause()
        self._stop_watch()

    def on_unmount(self) -> None:
        self._stop_watch()

    def on_connection_changed(self, msg: ConnectionChanged) -> None:
        if msg.state == CONNECTED and getattr(msg, "reconnected", False):
            self.action_refresh()

    # -- actions and the public hook --------------------------------------------------------

    def action_refresh(self) -> None:
        """List the processes again now."""
        self._fetch(self.app.client, self.container)  # type: ignore[attr-defined]

    def action_cycle_sort(self) -> None:
        """Sort by the next column."""
        self.sort = fmt.SORTS[(fmt.SORTS.index(self.sort) + 1) % len(fmt.SORTS)]
        self.descending = self.sort != "pid"
        self._redraw()

    def action_reverse(self) -> None:
        """Reverse the sort order."""
        self.descending = not self.descending
        self._redraw()

    def action_toggle_tree(self) -> None:
        """Switch between the sorted list and the process tree."""
        self.tree_view = not self.tree_view
        self._redraw(reindent=True)

    def action_cycle_container(self) -> None:
        """Filter to the next container (then back to all)."""
        selectors = ["", *self._selectors()]
        i = selectors.index(self.container) if self.container in selectors else -1
        self.container = selectors[(i + 1) % len(selectors)]
        self.action_refresh()

    def _selectors(self) -> list[str]:
        """One selector per container: its name when unique, since a restarted container
        keeps its name but gets a new id; else its id."""
        names = [c.name for c in self.containers]
        return [c.name if names.count(c.name) == 1 else c.id for c in self.containers]

    def action_signal(self) -> None:
        """Ask which signal to send to the selected process, then send it."""
        p = self.selected
        if p is None:
            self.notify("select a process first", severity="warning")
            return
        info = getattr(self.app, "info", None)
        allowed: tuple[str, ...] = ()
        if info is not None:
            if not info.features.signals:
                self.notify(
                    "signals are disabled on this sidecar (config switch allow_signals)",
                    severity="error",
                )
                return
            allowed = tuple(info.features.allowed_signals)
        ref = common_pb2.ProcessRef(pid=p.ref.pid, start_ticks=p.ref.start_ticks)

        def chosen(sig: str | None) -> None:
            if sig:
                self._send(self.app.client, ref, sig)  # type: ignore[attr-defined]

        self.app.push_screen(SignalDialog(p.ref.pid, p.ref.start_ticks, p.name, allowed), chosen)

    def select_pid(self, pid: int) -> None:
        """Show process ``pid``: move the cursor to it and load its details."""
        key = next((k for k, p in self.procs.items() if p.ref.pid == pid), None)
        if key is None:
            self._pending_pid = pid
            if self.container:
                self.container = ""  # it may be in another container
            self.action_refresh()
            return
        self._pending_pid = None
        table = self.query_one("#ps-table", DataTable)
        table.move_cursor(row=table.get_row_index(key))
        table.focus()
        self._select(key)

    # -- selection ---------------------------------------------------------------------------

    @on(DataTable.RowHighlighted, "#ps-table")
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        if self._select_timer is not None:
            self._select_timer.stop()
        key = event.row_key.value
        if key != self._cursor_key(event.data_table):
            return  # a stale highlight: the cursor moved on (select_pid, a redraw)
        if key == self._last_hl:
            return  # the same row again (a refresh, or where the cursor fell after an exit)
        self._last_hl = key
        if key is not None and (self.selected is None or fmt.row_key(self.selected) != key):
            self._select_timer = self.set_timer(SELECT_DELAY_S, lambda: self._select(key))

    @on(DataTable.RowSelected, "#ps-table")
    def _row_selected(self, event: DataTable.RowSelected) -> None:
        if event.row_key.value is not None:
            self._select(event.row_key.value)

    def _select(self, key: str) -> None:
        if self._select_timer is not None:
            self._select_timer.stop()
            self._select_timer = None
        p = self.procs.get(key)
        if p is None:
            return
        self.selected = p
        self._last_hl = key
        detail = self.query_one(ProcessDetail)
        detail.clear_samples()
        ref = common_pb2.ProcessRef(pid=p.ref.pid, start_ticks=p.ref.start_ticks)
        client = self.app.client  # type: ignore[attr-defined]
        self._load_detail(client, ref)
        self._stop_watch()
        self._watch(client, ref)

    # -- workers -------------------------------------------------------------------------------

    @work(thread=True, exclusive=True, exit_on_error=False, group="ps-list")
    def _fetch(self, client: Client, container: str) -> None:
        try:
            resp = client.processes.ListProcesses(
                processes_pb2.ListProcessesRequest(
                    container=common_pb2.ContainerSelector(id=container), fields=["fds"]
                ),
                timeout=CALL_TIMEOUT_S,
                metadata=client.metadata,
            )
            known = {c.id for c in self.containers}
            # Container names change rarely: ask again only for a new container id.
            containers = self.containers
            if not known or any(p.container_id not in known for p in resp.processes):
                containers = list(
                    client.info.ListContainers(
                        info_pb2.ListContainersRequest(include_sidecar=True, include_infra=True),
                        timeout=CALL_TIMEOUT_S,
                        metadata=client.metadata,
                    ).containers
                )
        except grpc.RpcError as e:
            if container and e.code() == grpc.StatusCode.NOT_FOUND:
                self.app.call_from_thread(self._container_gone, container)
            else:
                self.app.call_from_thread(self._failed, describe_rpc_error(e))
            return
        self.app.call_from_thread(self.show_list, resp, containers)

    def _container_gone(self, container: str) -> None:
        if self.container == container:
            self.container = ""
            self.notify(
                f"container {sanitize(container)} is gone; showing every container",
                severity="warning",
            )
            self.action_refresh()

    @work(thread=True, exclusive=True, exit_on_error=False, group="ps-detail")
    def _load_detail(self, client: Client, ref: common_pb2.ProcessRef) -> None:
        try:
            d = client.processes.GetProcess(
                processes_pb2.GetProcessRequest(ref=ref),
                timeout=CALL_TIMEOUT_S,
                metadata=client.metadata,
            )
        except grpc.RpcError as e:
            self.app.call_from_thread(self._failed, describe_rpc_error(e))
            return
        self.app.call_from_thread(self._show_detail, d)

    @work(thread=True, exit_on_error=False, group="ps-watch")
    def _watch(self, client: Client, ref: common_pb2.ProcessRef) -> None:
        call = client.processes.WatchProcess(
            processes_pb2.WatchProcessRequest(ref=ref, interval_ms=WATCH_INTERVAL_MS),
            metadata=client.metadata,
        )
        with self._watch_lock:
            self._watch_call = call
        try:
            for sample in call:
                self.app.call_from_thread(self._sample, ref, sample)
        except grpc.RpcError as e:
            code = e.code()
            if code in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.FAILED_PRECONDITION):
                self.app.call_from_thread(self._exited, ref)
            elif code != grpc.StatusCode.CANCELLED:
                self.app.call_from_thread(self._failed, describe_rpc_error(e))

    def _stop_watch(self) -> None:
        # A thread blocked on a stream only wakes when the call is cancelled.
        with self._watch_lock:
            call, self._watch_call = self._watch_call, None
        if call is not None:
            call.cancel()

    @work(thread=True, exclusive=True, exit_on_error=False, group="ps-signal")
    def _send(self, client: Client, ref: common_pb2.ProcessRef, sig: str) -> None:
        try:
            resp = client.processes.SignalProcess(
                processes_pb2.SignalProcessRequest(ref=ref, signal=sig, reason="borescope tui"),
                timeout=CALL_TIMEOUT_S,
                metadata=client.metadata,
            )
        except grpc.RpcError as e:
            self.app.call_from_thread(self._failed, describe_rpc_error(e))
            return
        text = f"sent {sig} to pid {ref.pid} via {resp.method}"
        self.app.call_from_thread(self.notify, text)
        self.app.call_from_thread(self.action_refresh)

    # -- drawing -------------------------------------------------------------------------------

    def _failed(self, message: str) -> None:
        self.notify(sanitize(message), severity="error")

    def _exited(self, ref: common_pb2.ProcessRef) -> None:
        p = self.selected
        key = f"{ref.pid}:{ref.start_ticks}"
        if p is None or fmt.row_key(p) != key or self._exit_noted == key:
            return  # another selection by now, or already said (listing and watch both see it)
        self._exit_noted = key
        self.query_one(ProcessDetail).mark_exited()
        self.notify(f"process {ref.pid} ({sanitize(p.name)}) exited", severity="warning")

    def _sample(self, ref: common_pb2.ProcessRef, sample: processes_pb2.ProcessSample) -> None:
        p = self.selected
        if p is not None and p.ref.pid == ref.pid and p.ref.start_ticks == ref.start_ticks:
            self.query_one(ProcessDetail).add_sample(sample)

    def _show_detail(self, d: processes_pb2.ProcessDetail) -> None:
        p = self.selected
        if p is not None and p.ref.pid == d.process.ref.pid:
            self.query_one(ProcessDetail).show(d)

    def show_list(
        self, resp: processes_pb2.ListProcessesResponse, containers: list[info_pb2.Container]
    ) -> None:
        """Apply one listing to the table: update changed cells, add new rows, drop gone ones."""
        self.listings += 1
        self.containers = containers
        self.procs = {fmt.row_key(p): p for p in resp.processes}
        # A page cut by the sidecar's message limit: say so rather than look complete.
        self.total = resp.page.total if resp.page.next_page_token else 0
        self._redraw()
        if self._pending_pid is not None:
            pid = self._pending_pid
            if any(p.ref.pid == pid for p in self.procs.values()):
                self.select_pid(pid)
            else:
                self._pending_pid = None
                self.notify(f"no process {pid} in the pod", severity="warning")

    def _redraw(self, reindent: bool = False) -> None:
        table = self.query_one("#ps-table", DataTable)
        names = {c.id: c.name for c in self.containers}
        if self.tree_view:
            ordered = fmt.tree_order(list(self.procs.values()))
        else:
            ranked = sorted(
                self.procs.values(),
                key=lambda p: fmt.sort_value(p, self.sort),
                reverse=self.descending,
            )
            ordered = [(0, p) for p in ranked]
        # Where the cursor is, by key: removing and sorting rows moves row indexes.
        keep = fmt.row_key(self.selected) if self.selected is not None else self._cursor_key(table)
        for gone in [k for k in self.shown if k not in self.procs]:
            table.remove_row(gone)
            del self.shown[gone]
        for depth, p in ordered:
            key = fmt.row_key(p)
            new = fmt.cells(p, names, depth)
            old = self.shown.get(key)
            if old is None:
                table.add_row(*(new[c] for c, _ in fmt.COLUMNS), key=key)
            else:
                for col, value in new.items():
                    if old[col] != value:
                        table.update_cell(key, col, value)
            self.shown[key] = new
        position = {p.ref.pid: i for i, (_d, p) in enumerate(ordered)}
        table.sort("pid", key=lambda pid: position.get(int(pid), 1 << 30))
        if keep is not None and keep in self.shown:
            table.move_cursor(row=table.get_row_index(keep))
        elif self.selected is not None and keep == fmt.row_key(self.selected):
            # The selected process is gone: keep its last state on show (marked exited)
            # instead of silently switching to whichever row the cursor fell on.
            self._last_hl = self._cursor_key(table)
            self._exited(self.selected.ref)
        self._status(len(ordered))

    @staticmethod
    def _cursor_key(table: DataTable[str]) -> str | None:
        if not table.row_count:
            return None
        try:
            row_key: RowKey = table.coordinate_to_cell_key(Coordinate(table.cursor_row, 0)).row_key
        except CellDoesNotExist:
            return None
        return row_key.value

    def _status(self, count: int) -> None:
        where = sanitize(self.container) if self.container else "all"
        order = (
            "tree"
            if self.tree_view
            else f"{fmt.SORT_LABELS[self.sort]} {'↓' if self.descending else '↑'}"
        )
        shown = (
            f"{count} of {self.total} processes (sidecar message limit)"
            if self.total
            else f"{count} processes"
        )
        self.query_one("#ps-status", Static).update(f"{shown} · container: {where} · sort: {order}")
