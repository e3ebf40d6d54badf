"""The Processes screen, driven with a Pilot against a real sidecar (local mode)."""

from __future__ import annotations

import subprocess
from typing import Any

from textual.widgets import DataTable

from sidecar.config import Config
from tests.conftest import Running, start_sidecar
from tests.integration.test_processes import wait_for_child
from tests.tui.conftest import screen_text
from tests.tui.test_app import notes, wait_for
from tui.app import make_app
from tui.screens.processes import ProcessesScreen
from tui.widgets.process_detail import ProcessDetail
from tui.widgets.process_signal import SignalDialog

SIZE = (160, 45)
CANARY = "canary-env-7f3a"


async def open_processes(app: Any, pilot: Any) -> ProcessesScreen:
    await pilot.press("2")
    await wait_for(pilot, lambda: isinstance(app.screen, ProcessesScreen))
    screen = app.screen
    assert isinstance(screen, ProcessesScreen)
    await wait_for(pilot, lambda: screen.listings >= 1, timeout=10)
    return screen


def table_pids(screen: ProcessesScreen) -> list[int]:
    table = screen.query_one("#ps-table", DataTable)
    return [int(str(table.get_row_at(i)[0])) for i in range(table.row_count)]


def command_of(screen: ProcessesScreen, pid: int) -> str:
    table = screen.query_one("#ps-table", DataTable)
    key = next(k for k, p in screen.procs.items() if p.ref.pid == pid)
    return str(table.get_row(key)[-1])


async def test_table_detail_and_sparklines(
    local_sidecar: Running, app_process: subprocess.Popen[bytes]
) -> None:
    """The table lists the app; select_pid loads its details (secret env value redacted,
    limits, threads) and the watch stream draws cpu and rss sparklines."""
    app = make_app(local_sidecar.client)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_processes(app, pilot)
        assert app_process.pid in table_pids(screen)
        screen.select_pid(app_process.pid)
        detail = screen.query_one(ProcessDetail)
        await wait_for(
            pilot,
            lambda: detail.detail is not None and detail.detail.process.ref.pid == app_process.pid,
            timeout=10,
        )
        env = dict(detail.rows("ps-env"))  # type: ignore[arg-type]
        assert env["DB_PASSWORD"] == "<redacted>" and env["PLAIN"] == "visible"
        assert any(r[0] == "Max open files" for r in detail.rows("ps-limits"))
        assert [r[0] for r in detail.rows("ps-threads")] == [str(app_process.pid)]
        assert any(r[0].startswith("version") for r in detail.rows("ps-cgroup"))
        await wait_for(pilot, lambda: len(detail.cpu) >= 2 and len(detail.rss) >= 2, timeout=10)
        await pilot.pause()
        text = screen_text(app)
        assert CANARY not in text
        assert f"pid {app_process.pid}" in text and "rss now" in text
        assert not [n for n in notes(app) if "ERROR" in n or "error" in n.lower()]


async def test_refresh_updates_rows_in_place_and_keeps_the_cursor(
    local_sidecar: Running, app_process: subprocess.Popen[bytes]
) -> None:
    """A refresh keeps the same row objects (update_cell, no clear/re-add) and the cursor
    stays on the selected process."""
    app = make_app(local_sidecar.client)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_processes(app, pilot)
        screen.select_pid(app_process.pid)
        await pilot.pause()
        table = screen.query_one("#ps-table", DataTable)
        before = dict(table.rows)
        count = screen.listings
        screen.action_refresh()
        await wait_for(pilot, lambda: screen.listings > count, timeout=10)
        survivors = [k for k in before if k in table.rows]
        assert len(survivors) >= 2
        assert all(table.rows[k] is before[k] for k in survivors)
        selected = screen.selected.ref.pid if screen.selected else None
        assert int(str(table.get_row_at(table.cursor_row)[0])) == app_process.pid, (
            f"selected {selected}, cursor row {table.cursor_row}, app row "
            f"{[i for i in range(table.row_count) if str(table.get_row_at(i)[0]) == str(app_process.pid)]}"
        )


async def test_sort_tree_and_container_filter(
    local_sidecar: Running, app_process: subprocess.Popen[bytes]
) -> None:
    """s sorts by memory (largest first), t shows the child under the app, c filters to one
    container and back."""
    wait_for_child(app_process.pid)
    app = make_app(local_sidecar.client)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_processes(app, pilot)
        await pilot.press("s")  # cpu -> mem
        assert screen.sort == "rss"
        by_pid = {p.ref.pid: p.rss_bytes for p in screen.procs.values()}
        shown = [by_pid[pid] for pid in table_pids(screen)]
        assert shown == sorted(shown, reverse=True)
        await pilot.press("t")
        pids = table_pids(screen)
        child = next(p.ref.pid for p in screen.procs.values() if p.ppid == app_process.pid)
        assert pids.index(child) == pids.index(app_process.pid) + 1
        assert command_of(screen, child).endswith("└─ sleep 300")
        for _ in range(12):  # cycle through the containers until the app's tree is shown
            count = screen.listings
            await pilot.press("c")
            await wait_for(pilot, lambda n=count: screen.listings > n, timeout=10)  # type: ignore[misc]
            if sorted(table_pids(screen)) == sorted([app_process.pid, child]):
                break
        else:
            raise AssertionError("no container filter showed just the app's tree")
        assert screen.container and f"container: {screen.container}" in screen_text(app)


async def test_signal_refused_names_the_switch(
    local_sidecar: Running, app_process: subprocess.Popen[bytes]
) -> None:
    """With signals off, the signal action ends in an error naming allow_signals; nothing is sent."""
    app = make_app(local_sidecar.client)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_processes(app, pilot)
        screen.select_pid(app_process.pid)
        await pilot.pause()
        await pilot.press("k")
        await pilot.pause(0.2)
        if isinstance(app.screen, SignalDialog):
            await pilot.press("enter")
        await wait_for(pilot, lambda: any("allow_signals" in n for n in notes(app)), timeout=10)
        assert app_process.poll() is None


async def test_signal_sent_after_confirmation(app_process: subprocess.Popen[bytes]) -> None:
    """With signals on: k opens the confirmation naming the pid, Escape sends nothing,
    Enter on SIGTERM delivers it (via pidfd) and says so."""
    r = start_sidecar(Config(local_root=app_process.pid, allow_signals=True))
    try:
        app = make_app(r.client)
        async with app.run_test(size=SIZE) as pilot:
            screen = await open_processes(app, pilot)
            screen.select_pid(app_process.pid)
            await pilot.pause()
            await pilot.press("k")
            await wait_for(pilot, lambda: isinstance(app.screen, SignalDialog))
            assert f"pid {app_process.pid}" in screen_text(app)
            await pilot.press("escape")
            await pilot.pause(0.3)
            assert app_process.poll() is None
            await pilot.press("k")
            await wait_for(pilot, lambda: isinstance(app.screen, SignalDialog))
            await pilot.press("enter")
            await wait_for(pilot, lambda: any("sent SIGTERM" in n for n in notes(app)), timeout=10)
            assert app_process.wait(timeout=5) == -15
    finally:
        r.client.close()
        r.sidecar.stop(0)


async def test_select_unknown_pid_warns(local_sidecar: Running) -> None:
    """select_pid for a pid that is not in the pod says so instead of doing nothing."""
    app = make_app(local_sidecar.client)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_processes(app, pilot)
        screen.select_pid(2**22 + 4321)
        await wait_for(pilot, lambda: any("no process" in n for n in notes(app)), timeout=10)


async def test_selected_process_exiting_is_shown(
    local_sidecar: Running, app_process: subprocess.Popen[bytes]
) -> None:
    """When the selected process exits, the watch stream ends and the pane says EXITED
    (its details stay as the last known state) with a warning, not an error."""
    app = make_app(local_sidecar.client)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_processes(app, pilot)
        screen.select_pid(app_process.pid)
        detail = screen.query_one(ProcessDetail)
        await wait_for(
            pilot, lambda: detail.detail is not None and len(detail.rss) >= 1, timeout=10
        )
        app_process.kill()
        app_process.wait()
        await wait_for(pilot, lambda: any("exited" in n for n in notes(app)), timeout=10)
        assert "EXITED" in str(detail.query_one("#ps-summary").content)  # type: ignore[attr-defined]


async def test_filter_on_a_vanished_container_falls_back_to_all(local_sidecar: Running) -> None:
    """A filter naming a container that no longer exists (it restarted under a new id)
    warns once and goes back to every container, instead of an error every refresh."""
    app = make_app(local_sidecar.client)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_processes(app, pilot)
        screen.container = "mnt-0-gone"
        screen.action_refresh()
        await wait_for(pilot, lambda: any("is gone" in n for n in notes(app)), timeout=10)
        assert screen.container == ""
        assert not [n for n in notes(app) if "NOT_FOUND" in n]


async def test_sparklines_resume_after_visiting_another_screen(
    local_sidecar: Running, app_process: subprocess.Popen[bytes]
) -> None:
    """Leaving the screen stops the watch stream; coming back starts it again, so the
    sparklines keep growing for the selected process."""
    app = make_app(local_sidecar.client)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_processes(app, pilot)
        screen.select_pid(app_process.pid)
        detail = screen.query_one(ProcessDetail)
        await wait_for(pilot, lambda: len(detail.rss) >= 1, timeout=10)
        await pilot.press("5")
        await wait_for(pilot, lambda: app.screen is not screen)
        await pilot.pause(0.3)
        await pilot.press("2")
        await wait_for(pilot, lambda: app.screen is screen)
        seen = len(detail.rss)
        await wait_for(pilot, lambda: len(detail.rss) >= seen + 2, timeout=10)
