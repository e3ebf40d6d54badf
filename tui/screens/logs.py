"""The home screen: every log source and the recorder's events, merged by time.

A worker thread follows FollowLogs (the recorder is one of its sources) and
puts batches in a small bounded queue; when the screen falls behind, the
worker waits, gRPC flow control holds the sidecar, and the file stays the
buffer. A timer drains the queue twenty times a second, merges by (time,
source, seq) over a short window, and writes the new lines with one
``write_lines`` call. Everything kept is capped at ``LINE_CAP`` lines, so
memory stays flat however long it runs. A dropped connection resumes from
the cursors of the last batch taken, so no line shows twice or goes missing.
Opened through Kubernetes, the app's stdout read through the API joins the
merge as one more source (``logs_kube``).
"""

from __future__ import annotations

import contextlib
import json
import queue
import re
import time
from collections import deque
from typing import Any, ClassVar

import grpc
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.reactive import reactive
from textual.screen import Screen
from textual.widgets import Footer, Static
from textual.worker import get_current_worker

from protos import logs_pb2
from tui.client import Client, describe_rpc_error
from tui.merge import Merger
from tui.messages import CONNECTED, ConnectionChanged
from tui.sanitize import sanitize
from tui.screens.logs_kube import KubeFeed
from tui.widgets.header import BorescopeHeader
from tui.widgets.log_format import PALETTE, Row, lines_of, parse_jump, row_of, short_name
from tui.widgets.log_view import LogView
from tui.widgets.prompt import Prompt

LINE_CAP = 20_000
TAIL_LINES = 500
DRAIN_S = 0.05  # 20 small batches a second: no single tick holds a key press for long
MAX_RECORDS_PER_TICK = 2500  # 50k lines/s at most: keys stay responsive; the rest waits upstream
KUBE_RECORDS_PER_TICK = 250  # the API's copy of stdout gets at least this (5k lines/s)
INBOX_BATCHES = 16  # x <= 1000 records: what the worker may hold before it waits
STREAM_TIMEOUT_S = 3600.0  # long streams end and resume from their cursors
RETRY_S = (0.2, 0.5, 1.0, 2.0, 5.0)
CURSOR_KEY = "borescope-cursor"
LEVEL_CYCLE = (0, 2, 3, 4, 5)
LEVEL_WORDS = {0: "all", 1: "trace+", 2: "debug+", 3: "info+", 4: "warn+", 5: "error+", 6: "fatal"}


def _rx(text: str) -> re.Pattern[str]:
    """A search/filter regex; smart case (case-insensitive unless it has a capital)."""
    return re.compile(text, 0 if any(c.isupper() for c in text) else re.IGNORECASE)


class LogsScreen(Screen[None]):
    """Merged logs and events: follow, pause, search, filter, levels, bookmarks, time jumps."""

    CSS_PATH = "logs.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding(
            "space",
            "toggle_follow",
            "Follow/Pause",
            tooltip="Pause the view (new lines are counted) or follow again.",
        ),
        Binding(
            "slash",
            "search",
            "Search",
            key_display="/",
            tooltip="Highlight a regex; n/N go to the next/previous match.",
        ),
        Binding("n", "next_match", "Next", tooltip="Go to the next search match."),
        Binding(
            "N",
            "prev_match",
            "Prev",
            key_display="N",
            show=False,
            tooltip="Go to the previous search match.",
        ),
        Binding(
            "f", "filter", "Filter", tooltip="Show only lines matching a regex (empty: show all)."
        ),
        Binding(
            "l",
            "cycle_level",
            "Level",
            tooltip="Minimum level: all, debug, info, warn, error in turn.",
        ),
        Binding("w", "set_level(4)", "Warn+", show=False, tooltip="Show warnings and worse only."),
        Binding(
            "exclamation_mark",
            "set_level(5)",
            "Errors",
            key_display="!",
            show=False,
            tooltip="Show errors and worse only.",
        ),
        Binding("a", "set_level(0)", "All", show=False, tooltip="Show every level again."),
        Binding(
            "e", "next_error", "Next error", tooltip="Go to the next error, fatal or gap line."
        ),
        Binding(
            "E",
            "prev_error",
            "Prev error",
            key_display="E",
            show=False,
            tooltip="Go to the previous error line.",
        ),
        Binding("m", "bookmark", "Mark", tooltip="Bookmark the current line (again to remove)."),
        Binding("u", "next_bookmark", "Marks", tooltip="Go to the next bookmark."),
        Binding(
            "t", "jump_time", "Time", tooltip="Go to a time: 14:05, 14:05:30, -5m or an ISO time."
        ),
        Binding(
            "j", "toggle_pretty", "JSON", tooltip="Pretty-print JSON lines (or show them raw)."
        ),
        Binding(
            "escape", "clear_search", "Clear", show=False, tooltip="Clear the search and filter."
        ),
        Binding(
            "G", "follow", "End", key_display="G", show=False, tooltip="Jump to the end and follow."
        ),
    ]

    following: reactive[bool] = reactive(True)
    """New lines scroll into view; False while paused (they are counted instead)."""
    min_level: reactive[int] = reactive(0)
    """Lines below this level are hidden (0 = show every level)."""
    pretty: reactive[bool] = reactive(False)
    """Pretty-print JSON lines."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: deque[Row] = deque(maxlen=LINE_CAP)
        self.names: dict[str, str] = {}
        self.new_while_paused = 0
        self.received = 0
        self.live = False
        self._held: deque[Row] = deque(maxlen=LINE_CAP)  # shown on resume
        self._inbox: queue.Queue[logs_pb2.LogBatch] = queue.Queue(maxsize=INBOX_BATCHES)
        self._merger = Merger(window_s=0.25)
        self._cursors: dict[str, str] = {}
        self._search: re.Pattern[str] | None = None
        self._filter: re.Pattern[str] | None = None
        self._pos: int | None = None
        self._call: Any = None
        self._status_text = ""
        self._kube: KubeFeed | None = None

    def compose(self) -> ComposeResult:
        yield BorescopeHeader()
        yield Static("connecting…", id="logs-status", markup=False)
        yield LogView(LINE_CAP, id="logs-view")
        yield Footer()

    @property
    def view(self) -> LogView:
        """The log pane."""
        return self.query_one("#logs-view", LogView)

    @property
    def line_rows(self) -> list[Row]:
        """The row behind each line of the view (a pretty-printed row has several)."""
        return self.view.rows

    def on_mount(self) -> None:
        self.set_interval(DRAIN_S, self.drain)
        self._start()
        pod = self.app.kube_pod() if hasattr(self.app, "kube_pod") else None
        if pod is not None:  # opened through Kubernetes: the app's stdout from the API too
            self._kube = KubeFeed(*pod)
            self._kube.start(self, self.app.client)  # type: ignore[attr-defined]

    def on_unmount(self) -> None:
        self._cancel()
        if self._kube is not None:
            self._kube.close()

    def on_connection_changed(self, msg: ConnectionChanged) -> None:
        if msg.state == CONNECTED and msg.reconnected and not self._streaming():
            self._start()

    # -- the stream (worker thread) ------------------------------------------------------

    def _streaming(self) -> bool:
        return any(w.group == "logs-stream" and w.is_running for w in self.workers)

    def _start(self) -> None:
        self._follow(self.app.client, dict(self._cursors))  # type: ignore[attr-defined]

    def _cancel(self) -> None:
        self.workers.cancel_group(self, "logs-stream")
        if self._call is not None:
            self._call.cancel()

    @work(thread=True, exclusive=True, exit_on_error=False, group="logs-stream")
    def _follow(self, client: Client, cursors: dict[str, str]) -> None:
        worker = get_current_worker()
        attempt = 0
        while not worker.is_cancelled:
            req = logs_pb2.FollowLogsRequest(
                cursors=cursors,
                tail_lines=TAIL_LINES,
                follow=True,
                detail=logs_pb2.DETAIL_BASIC,
                max_batch_records=1000,
            )
            try:
                self._call = client.logs.FollowLogs(
                    req, metadata=client.metadata, timeout=STREAM_TIMEOUT_S
                )
                for batch in self._call:
                    attempt = 0
                    while not worker.is_cancelled:
                        try:
                            self._inbox.put(batch, timeout=0.2)  # full: the screen is behind; wait
                            break
                        except queue.Full:
                            continue
                    cursors.update(batch.cursors)
                    self._cursors = dict(cursors)
                return
            except grpc.RpcError as e:
                code = e.code()
                if worker.is_cancelled or code == grpc.StatusCode.CANCELLED:
                    return
                if code not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                    self.app.call_from_thread(self.notify, describe_rpc_error(e), severity="error")
                    return
                trailer = dict(e.trailing_metadata() or ())  # type: ignore[attr-defined]
                if CURSOR_KEY in trailer:
                    with contextlib.suppress(ValueError):
                        cursors.update(json.loads(trailer[CURSOR_KEY]))
                time.sleep(RETRY_S[min(attempt, len(RETRY_S) - 1)])
                attempt += 1

    # -- feeding the view (UI thread) ---------------------------------------------------

    def drain(self) -> None:
        """Take what the worker has queued and show it in one batch (the timer calls this)."""
        now = time.monotonic_ns()
        taken = 0
        while taken < MAX_RECORDS_PER_TICK:
            try:
                batch = self._inbox.get_nowait()
            except queue.Empty:
                break
            taken += len(batch.records)
            for s in batch.sources_added:
                self.names[s.id] = short_name(s.id, s.path)
            self._merger.push(list(batch.records), now)
            self.live = self.live or batch.live
        if self._kube is not None:
            # Its own share too: a sidecar at full rate must not starve it.
            share = max(KUBE_RECORDS_PER_TICK, MAX_RECORDS_PER_TICK - taken)
            sources, kube_records = self._kube.take(share)
            for s in sources:
                self.names[s.id] = short_name(s.id, s.path)
            self._merger.push(kube_records, now)
        records = self._merger.pop_ready(now, flush=not self.live)
        if records:
            self.add_records(records)
        self._status()

    def add_records(self, records: list[logs_pb2.Record]) -> None:
        """Append records (already in merge order) to the model and, when following, the view."""
        rows = [row_of(r) for r in records]
        self.received += len(rows)
        self.rows.extend(rows)
        for r in rows:
            if r.source_id not in self.names:
                self.names[r.source_id] = short_name(r.source_id)
        self._colour_sources()
        shown = self._visible_rows(rows)
        if not self.following:
            self._held.extend(shown)
            self.new_while_paused += len(shown)
            return
        self._write(shown)

    def _write(self, rows: list[Row] | deque[Row]) -> None:
        lines: list[str] = []
        owners: list[Row] = []
        pretty = self.pretty  # reactive reads are slow: once per batch, not per row
        names = self.names
        for r in rows:
            if r.line and not pretty and not r.bookmarked:
                lines.append(r.line)
                owners.append(r)
                continue
            for line in lines_of(r, names.get(r.source_id, r.source_id), pretty):
                lines.append(line)
                owners.append(r)
        if not lines:
            return
        excess = self.view.write_rows(lines, owners, scroll_end=self.following)
        if excess and self._pos is not None:  # the Log pruned as many lines from its start
            self._pos = max(0, self._pos - excess)

    def _visible_rows(self, rows: Any) -> list[Row]:
        """The rows that pass the level and filter (reactives read once, not per row).

        The filter sees what is shown: the one-line form (time, level, source,
        message and fields), and with pretty-print on, the raw JSON too.
        """
        level, flt, gap = self.min_level, self._filter, logs_pb2.RECORD_KIND_GAP
        if not level and flt is None:
            return list(rows)
        if level:
            rows = [r for r in rows if r.level >= level or r.kind == gap]
        if flt is None:
            return list(rows)
        search, names, pretty = flt.search, self.names, self.pretty
        return [
            r
            for r in rows
            if search(r.line or lines_of(r, names.get(r.source_id, r.source_id), False)[0])
            is not None
            or (pretty and search(r.text) is not None)
        ]

    def _colour_sources(self) -> None:
        colours = self.view.line_highlighter.sources
        for name in self.names.values():
            if name not in colours:
                colours[name] = PALETTE[len(colours) % len(PALETTE)]

    def _rebuild(self) -> None:
        """Show the kept rows again under the current level, filter and JSON mode."""
        view = self.view
        view.clear()
        self._held.clear()
        self.new_while_paused = 0
        self._pos = None
        self._write(self._visible_rows(self.rows))
        if not self.line_rows:
            view.write_rows([], [], scroll_end=True)  # an empty view's size (clear() keeps it)
        view.restyle()
        self._status()

    def _status(self) -> None:
        parts = [
            "● following"
            if self.following
            else f"❚❚ paused — {self.new_while_paused} new lines (space: follow)"
        ]
        if self.min_level:
            parts.append(f"level {LEVEL_WORDS[self.min_level]}")
        if self._filter is not None:
            parts.append(f"filter /{sanitize(self._filter.pattern)}/")
        if self._search is not None:
            parts.append(f"search /{sanitize(self._search.pattern)}/ (n/N)")
        if self.pretty:
            parts.append("json pretty")
        parts.append(
            f"{len(self.names)} sources · {len(self.line_rows)} lines"
            + ("" if self.live else " · loading history")
        )
        text = "  ·  ".join(parts)
        if text != self._status_text:  # Static.update relayouts the screen: only on a change
            self._status_text = text
            # One fixed-height line: no layout pass (it re-renders the whole screen).
            self.query_one("#logs-status", Static).update(text, layout=False)

    # -- following ----------------------------------------------------------------------

    def watch_following(self, following: bool) -> None:
        if following:
            held = list(self._held)
            self._held.clear()
            self.new_while_paused = 0
            self._write(held)
            self.view.auto_scroll = True
            self.view.scroll_end(animate=False)
        else:
            self.view.auto_scroll = False
        if self.is_mounted:
            self._status()

    def action_toggle_follow(self) -> None:
        """Pause the view, or follow again."""
        self.following = not self.following

    def action_follow(self) -> None:
        """Jump to the end and follow."""
        self.following = True

    def _go(self, y: int) -> None:
        """Move to line ``y`` (pausing, so the view stays there)."""
        self.following = False
        self._pos = y
        self.view.center_on(y)
        self._status()

    def _here(self) -> int:
        return self._pos if self._pos is not None else self.view.top_line

    def _find(self, test: Any, forward: bool) -> int | None:
        """The next line (or previous) passing ``test``, wrapping around the ends once."""
        n = len(self.line_rows)
        if not n:
            return None
        start = min(self._here(), n - 1)
        order = range(start + 1, n) if forward else range(start - 1, -1, -1)
        y = next((y for y in order if test(y)), None)
        if y is None:
            wrap = range(0, start + 1) if forward else range(n - 1, start - 1, -1)
            y = next((y for y in wrap if test(y)), None)
            if y is not None and y != start:
                self.notify("wrapped around", timeout=1.5)
        return y

    # -- search, filter, levels, pretty -----------------------------------------------------

    def action_search(self) -> None:
        """Ask for a search regex."""
        self.app.push_screen(
            Prompt("Search (regex; smart case)", "timeout|refused"), self.set_search
        )

    def set_search(self, text: str | None) -> None:
        """Highlight ``text`` (a regex) and go to its first match after the current line."""
        if not text:
            return
        try:
            self._search = _rx(text)
        except re.error as e:
            self.notify(f"search {text!r}: {e}", severity="error")
            return
        self.view.line_highlighter.search = self._search
        self.view.restyle()
        self.action_next_match()

    def _match(self, y: int) -> bool:
        return self._search is not None and self._search.search(self.view.lines[y]) is not None

    def action_next_match(self) -> None:
        """Go to the next search match."""
        self._jump_to(self._find(self._match, True), "no match")

    def action_prev_match(self) -> None:
        """Go to the previous search match."""
        self._jump_to(self._find(self._match, False), "no match")

    def _jump_to(self, y: int | None, miss: str) -> None:
        if y is None:
            self.notify(miss, severity="information")
        else:
            self._go(y)

    def action_filter(self) -> None:
        """Ask for a filter regex (empty: show everything)."""
        self.app.push_screen(
            Prompt("Filter: show only lines matching (regex)", "error|warn"), self.set_filter
        )

    def set_filter(self, text: str | None) -> None:
        """Show only lines matching ``text`` (None or empty clears the filter)."""
        if not text:
            self._filter = None
        else:
            try:
                self._filter = _rx(text)
            except re.error as e:
                self.notify(f"filter {text!r}: {e}", severity="error")
                return
        self._rebuild()

    def action_clear_search(self) -> None:
        """Clear the search and the filter."""
        self._search = None
        self.view.line_highlighter.search = None
        if self._filter is not None:
            self._filter = None
            self._rebuild()
        self.view.restyle()
        self._status()

    def action_set_level(self, level: int) -> None:
        """Show lines at this level or worse only."""
        self.min_level = level

    def action_cycle_level(self) -> None:
        """Next minimum level: all, debug, info, warn, error."""
        i = LEVEL_CYCLE.index(self.min_level) if self.min_level in LEVEL_CYCLE else 0
        self.min_level = LEVEL_CYCLE[(i + 1) % len(LEVEL_CYCLE)]

    def watch_min_level(self) -> None:
        if self.is_mounted:
            self._rebuild()

    def action_toggle_pretty(self) -> None:
        """Pretty-print JSON lines, or show them raw."""
        self.pretty = not self.pretty

    def watch_pretty(self) -> None:
        if self.is_mounted:
            self._rebuild()

    # -- errors, bookmarks, time ------------------------------------------------------------

    def _first_line(self, y: int) -> bool:
        return y == 0 or self.line_rows[y - 1] is not self.line_rows[y]

    def action_next_error(self) -> None:
        """Go to the next error line."""
        test = lambda y: self.line_rows[y].is_error and self._first_line(y)  # noqa: E731
        self._jump_to(self._find(test, True), "no error lines")

    def action_prev_error(self) -> None:
        """Go to the previous error line."""
        test = lambda y: self.line_rows[y].is_error and self._first_line(y)  # noqa: E731
        self._jump_to(self._find(test, False), "no error lines")

    def action_bookmark(self) -> None:
        """Bookmark the current line (or remove its bookmark)."""
        if not self.line_rows:
            return
        y = min(self._here(), len(self.line_rows) - 1)
        while y > 0 and not self._first_line(y):
            y -= 1
        row = self.line_rows[y]
        row.bookmarked = not row.bookmarked
        row.line = ""
        self.view.set_line(
            y, lines_of(row, self.names.get(row.source_id, row.source_id), self.pretty)[0]
        )
        self._pos = y
        self.notify("bookmarked" if row.bookmarked else "bookmark removed", timeout=1.5)

    def action_next_bookmark(self) -> None:
        """Go to the next bookmark (wrapping around)."""
        marked = [y for y, r in enumerate(self.line_rows) if r.bookmarked and self._first_line(y)]
        if not marked:
            self.notify("no bookmarks: press m on a line", severity="information")
            return
        here = self._here()
        self._go(next((y for y in marked if y > here), marked[0]))

    def action_jump_time(self) -> None:
        """Ask for a time and go there."""
        self.app.push_screen(
            Prompt("Go to time (UTC): 14:05, 14:05:30, -5m, or ISO", "-5m"), self._jump_answer
        )

    def _jump_answer(self, text: str | None) -> None:
        if text:
            self.jump_to_time(text)

    def jump_to_time(self, text: str) -> None:
        """Go to the first line at or after a time (the command palette calls this)."""
        latest = self.line_rows[-1].time_ns if self.line_rows else 0
        try:
            target = parse_jump(text, latest)
        except ValueError as e:
            self.notify(str(e), severity="error")
            return
        y = next((i for i, r in enumerate(self.line_rows) if r.time_ns >= target), None)
        if y is None:
            self.notify("nothing that late yet; showing the end", severity="information")
            self.following = True
            return
        self._go(y)
