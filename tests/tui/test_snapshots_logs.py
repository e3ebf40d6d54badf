"""How the Logs (home) and Events screens look, at 120x40 and 80x24, with frozen records.

The live streams are cancelled and the screens are fed fixed records through
their own ingest paths (``add_records`` for Logs, the inbox + ``drain`` for
Events), so nothing live reaches a snapshot. A hostile line (OSC 52, bare CR,
C1) is among the records: it must render escaped.
"""

from __future__ import annotations

import queue
from typing import Any

import pytest
from textual.pilot import Pilot

from protos import common_pb2, events_pb2, logs_pb2
from tests.conftest import Running
from tests.tui.test_snapshots import SIZES, app_for, frozen, mute, quiet
from tui.merge import Merger

T0 = 1_795_420_800_000_000_000  # 2026-11-23T08:00:00Z, in ns


def fixed_records() -> list[logs_pb2.Record]:
    """A small incident: requests, a warning, errors, a recorder event, a gap, a hostile line."""
    L = logs_pb2
    rows = [
        (
            0,
            "file:app",
            L.LEVEL_INFO,
            '{"level":"info","msg":"request","path":"/api/cart","ms":12}',
        ),
        (1, "stdio:app", L.LEVEL_INFO, "worker tick 41"),
        (2, "file:app", L.LEVEL_WARN, '{"level":"warning","msg":"slow query","ms":950}'),
        (
            3,
            "file:app",
            L.LEVEL_ERROR,
            '{"level":"error","msg":"database query failed","err":"timeout"}',
        ),
        (
            4,
            "recorder",
            L.LEVEL_ERROR,
            "process exited: demo-worker (pid 5) killed by SIGKILL (exit 137)",
        ),
        (5, "stdio:app", L.LEVEL_INFO, "evil \x1b]52;c;aGVsbG8=\x07 line\rspoof \x9b31m"),
        (6, "file:app", L.LEVEL_INFO, '{"level":"info","msg":"request","path":"/healthz","ms":1}'),
    ]
    out = [
        L.Record(time_ns=T0 + i * 250_000_000, source_id=src, level=lvl, message=text, seq=i)
        for i, src, lvl, text in rows
    ]
    out[4].kind = L.RECORD_KIND_EVENT
    gap = L.Record(time_ns=T0 + 7 * 250_000_000, source_id="file:app", seq=7)
    gap.kind = L.RECORD_KIND_GAP
    gap.gap.lost = 4096
    gap.gap.reason = "truncated while unread (copytruncate)"
    return [*out, gap]


def fixed_events() -> events_pb2.EventBatch:
    E = events_pb2
    kinds = [
        (E.EVENT_KIND_RECORDER_STARTED, E.SEVERITY_INFO, "flight recorder started", None),
        (
            E.EVENT_KIND_PORT_OPENED,
            E.SEVERITY_INFO,
            "port tcp/8080 opened by demo-app (pid 3)",
            None,
        ),
        (E.EVENT_KIND_ERROR_BURST, E.SEVERITY_WARNING, "12 error lines in 10 s from app.log", None),
        (E.EVENT_KIND_OOM_KILL, E.SEVERITY_CRITICAL, "OOM kill in demo-app (limit 256 MiB)", None),
        (E.EVENT_KIND_PROCESS_EXITED, E.SEVERITY_CRITICAL, "demo-worker (pid 5) exited", 137),
        (
            E.EVENT_KIND_CONTAINER_RESTARTED,
            E.SEVERITY_WARNING,
            "demo-app restarted (root pid 3 → 9)",
            None,
        ),
    ]
    batch = E.EventBatch(cursor="6", live=True)
    for i, (kind, sev, msg, code) in enumerate(kinds):
        e = batch.events.add(
            seq=i + 1, kind=kind, severity=sev, container_id="demo-app", message=msg
        )
        e.time.FromNanoseconds(T0 + i * 1_000_000_000)
        e.process.CopyFrom(common_pb2.ProcessRef(pid=5, start_ticks=100))
        if code is not None:
            e.exit_code = code
    return batch


def _drop_inbox(inbox: queue.Queue[Any]) -> None:
    while True:
        try:
            inbox.get_nowait()
        except queue.Empty:
            return


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_logs_screen(snap_compare: Any, pilot_sidecar: Running, size: tuple[int, int]) -> None:
    """Home: merged records with a colour per source, levels, a recorder event, an explicit
    gap, a hostile line escaped, the status line and the footer keys."""

    async def logs(pilot: Pilot[Any]) -> None:
        app: Any = pilot.app
        mute(app)
        await pilot.press("1")
        await pilot.pause()
        screen = app.screen
        screen._cancel()
        await quiet(app, screen)
        _drop_inbox(screen._inbox)
        screen._merger = Merger(window_s=0.25)
        screen.rows.clear()
        screen.names.clear()
        screen.view.line_highlighter.sources.clear()  # colours follow first appearance
        screen.received = 0
        screen.live = True
        screen.names.update({"file:app": "app.log", "stdio:app": "stdout", "recorder": "recorder"})
        screen._rebuild()
        screen.add_records(fixed_records())
        screen._status()
        await pilot.wait_for_scheduled_animations()  # the view scrolls to the end
        await pilot.pause()

    assert snap_compare(app_for(pilot_sidecar), terminal_size=size, run_before=frozen(then=logs))


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_events_screen(snap_compare: Any, pilot_sidecar: Running, size: tuple[int, int]) -> None:
    """Events: what the recorder saw (start, port, error burst, OOM kill, exit 137, restart)."""

    async def events(pilot: Pilot[Any]) -> None:
        app: Any = pilot.app
        mute(app)
        await pilot.press("5")
        await pilot.pause()
        screen = app.screen
        screen.workers.cancel_group(screen, "events-stream")
        if screen._call is not None:
            screen._call.cancel()
        await quiet(app, screen)
        _drop_inbox(screen._inbox)
        screen.events.clear()
        screen._redraw()  # columns sized afresh: none wider from events seen before
        screen._inbox.put(fixed_events())
        screen.drain()

    assert snap_compare(app_for(pilot_sidecar), terminal_size=size, run_before=frozen(then=events))
