"""The Events screen: the flight recorder's ring, then live events, newest at the bottom.

A worker follows FollowEvents (resuming from its cursor after a disconnect)
into a bounded queue; a timer adds the new rows to the table in one batch.
The table keeps at most ``MAX_ROWS`` events; the details of the selected one
(every attribute, exit code, process) show under it.
"""

from __future__ import annotations

import queue
import time
from collections import deque
from typing import Any, ClassVar

import grpc
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.reactive import reactive
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static
from textual.worker import get_current_worker

from protos import events_pb2
from tui.client import Client, describe_rpc_error
from tui.messages import CONNECTED, ConnectionChanged
from tui.sanitize import sanitize
from tui.widgets.header import BorescopeHeader
from tui.widgets.log_format import clock

MAX_ROWS = 5000
DRAIN_S = 0.2
COLUMNS = ("time", "sev", "kind", "container", "message")
RETRY_S = (0.2, 0.5, 1.0, 2.0, 5.0)
STREAM_TIMEOUT_S = 3600.0
SEVERITY = {0: "info", 1: "WARN", 2: "CRIT"}


def kind_name(kind: int) -> str:
    """ "process_exited" for EVENT_KIND_PROCESS_EXITED."""
    return events_pb2.EventKind.Name(kind)[len("EVENT_KIND_") :].lower()  # type: ignore[arg-type]


class EventsScreen(Screen[None]):
    """What the recorder saw: process starts and exits, restarts, OOM kills, ports, bursts."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding(
            "w",
            "toggle_warnings",
            "Warn+",
            tooltip="Show only warnings and critical events (again: all).",
        ),
        Binding("G", "end", "End", key_display="G", tooltip="Go to the newest event."),
    ]
    DEFAULT_CSS = """
    EventsScreen #ev-status { height: 1; padding: 0 1; color: $text-muted; }
    EventsScreen #ev-table { height: 1fr; }
    EventsScreen #ev-detail { height: auto; max-height: 8; padding: 0 1; border-top: solid $primary; }
    """

    warnings_only: reactive[bool] = reactive(False)
    """Hide info events."""

    def __init__(self) -> None:
        super().__init__()
        self.events: deque[events_pb2.Event] = deque(maxlen=MAX_ROWS)
        self.cursor = ""
        self.live = False
        self._inbox: queue.Queue[events_pb2.EventBatch] = queue.Queue(maxsize=64)
        self._call: Any = None
        self._status_text = ""

    def compose(self) -> ComposeResult:
        yield BorescopeHeader()
        yield Static("loading…", id="ev-status", markup=False)
        table: DataTable[str] = DataTable(id="ev-table", cursor_type="row", zebra_stripes=True)
        yield table
        yield Static("", id="ev-detail", markup=False)
        yield Footer()

    def on_mount(self) -> None:
        _add_columns(self.query_one("#ev-table", DataTable))
        self.set_interval(DRAIN_S, self.drain)
        self._follow(self.app.client)  # type: ignore[attr-defined]

    def on_unmount(self) -> None:
        self.workers.cancel_group(self, "events-stream")
        if self._call is not None:
            self._call.cancel()

    def on_connection_changed(self, msg: ConnectionChanged) -> None:
        running = any(w.group == "events-stream" and w.is_running for w in self.workers)
        if msg.state == CONNECTED and msg.reconnected and not running:
            self._follow(self.app.client)  # type: ignore[attr-defined]

    @work(thread=True, exclusive=True, exit_on_error=False, group="events-stream")
    def _follow(self, client: Client) -> None:
        worker = get_current_worker()
        attempt = 0
        while not worker.is_cancelled:
            req = events_pb2.FollowEventsRequest(cursor=self.cursor, follow=True)
            try:
                self._call = client.events.FollowEvents(
                    req, metadata=client.metadata, timeout=STREAM_TIMEOUT_S
                )
                for batch in self._call:
                    attempt = 0
                    while not worker.is_cancelled:
                        try:
                            self._inbox.put(batch, timeout=0.2)
                            break
                        except queue.Full:
                            continue
                    self.cursor = batch.cursor or self.cursor
                return
            except grpc.RpcError as e:
                code = e.code()
                if worker.is_cancelled or code == grpc.StatusCode.CANCELLED:
                    return
                if code == grpc.StatusCode.OUT_OF_RANGE:
                    self.cursor = ""  # evicted while away: the gap is shown, then what is kept
                    continue
                if code not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                    self.app.call_from_thread(self.notify, describe_rpc_error(e), severity="error")
                    return
                time.sleep(RETRY_S[min(attempt, len(RETRY_S) - 1)])
                attempt += 1

    def drain(self) -> None:
        """Add what arrived to the table in one batch (the timer calls this)."""
        new: list[events_pb2.Event] = []
        while True:
            try:
                b = self._inbox.get_nowait()
            except queue.Empty:
                break
            if b.HasField("gap") and b.gap.lost:
                self.notify(
                    f"{b.gap.lost} events were evicted before they were shown", severity="warning"
                )
            new += b.events
            self.live = self.live or b.live
        if new:
            self.events.extend(new)
            table = self.query_one("#ev-table", DataTable)
            if table.row_count + len(new) > MAX_ROWS:
                self._redraw()  # rare: rebuild from the bounded deque instead of removing rows one by one
            else:
                at_end = table.cursor_row >= table.row_count - 1
                table.add_rows([self._cells(e) for e in new if self._shown(e)])
                if at_end:
                    table.move_cursor(row=table.row_count - 1)
        self._status()

    def _shown(self, e: events_pb2.Event) -> bool:
        return not self.warnings_only or e.severity >= events_pb2.SEVERITY_WARNING

    @staticmethod
    def _cells(e: events_pb2.Event) -> tuple[str, ...]:
        code = f" (exit {e.exit_code})" if e.HasField("exit_code") else ""
        return (
            clock(e.time.seconds * 1_000_000_000 + e.time.nanos),
            SEVERITY.get(e.severity, "?"),
            kind_name(e.kind),
            sanitize(e.container_id),
            sanitize(e.message) + code,
        )

    def _redraw(self) -> None:
        table = self.query_one("#ev-table", DataTable)
        table.clear(columns=True)  # columns fit what is shown now, not what was before
        _add_columns(table)
        table.add_rows([self._cells(e) for e in self.events if self._shown(e)])
        table.move_cursor(row=max(0, table.row_count - 1))

    def _status(self) -> None:
        text = f"{len(self.events)} events" + (" · following" if self.live else " · loading")
        if self.warnings_only:
            text += " · warnings and critical only (w: all)"
        if text != self._status_text:  # Static.update relayouts the screen: only on a change
            self._status_text = text
            self.query_one("#ev-status", Static).update(text)

    @on(DataTable.RowHighlighted)
    def _detail(self, event: DataTable.RowHighlighted) -> None:
        shown = [e for e in self.events if self._shown(e)]
        if not 0 <= event.cursor_row < len(shown):
            return
        e = shown[event.cursor_row]
        parts = [f"#{e.seq} {kind_name(e.kind)}: {sanitize(e.message)}"]
        if e.HasField("process"):
            parts.append(f"pid {e.process.pid} (start {e.process.start_ticks})")
        if e.HasField("exit_code"):
            parts.append(f"exit status {e.exit_code}")
        parts += [f"{sanitize(k)}={sanitize(v)}" for k, v in sorted(e.attrs.items())]
        self.query_one("#ev-detail", Static).update("\n".join(parts))

    def action_toggle_warnings(self) -> None:
        """Show only warnings and critical events, or all again."""
        self.warnings_only = not self.warnings_only

    def watch_warnings_only(self) -> None:
        if self.is_mounted:
            self._redraw()
            self._status()

    def action_end(self) -> None:
        """Go to the newest event."""
        table = self.query_one("#ev-table", DataTable)
        table.move_cursor(row=max(0, table.row_count - 1))


def _add_columns(table: DataTable[str]) -> None:
    for label in COLUMNS:
        table.add_column(label, key=label)
