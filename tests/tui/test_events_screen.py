"""The Events screen against a real sidecar whose recorder watches a real app."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator

import pytest
from textual.widgets import DataTable, Static

from sidecar.config import Config
from tests.conftest import Running, start_sidecar
from tests.integration.test_recorder import App
from tests.tui.conftest import screen_text
from tests.tui.test_app import wait_for
from tui.app import make_app
from tui.screens.events import EventsScreen

SIZE = (140, 40)


@pytest.fixture
def rec_env() -> Iterator[tuple[Running, App]]:
    app = App()
    r = start_sidecar(Config(local_root=app.p.pid, recorder_interval_s=0.1))
    yield r, app
    r.client.close()
    r.sidecar.stop(0)
    app.close()


async def test_events_history_live_and_details(rec_env: tuple[Running, App]) -> None:
    """History comes first (the recorder's start), a killed child appears live with its exit
    status, selecting it shows its details, and 'w' keeps warnings only."""
    r, app_proc = rec_env
    app = make_app(r.client)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("5")
        await wait_for(pilot, lambda: isinstance(app.screen, EventsScreen))
        screen = app.screen
        assert isinstance(screen, EventsScreen)
        table = screen.query_one("#ev-table", DataTable)
        await wait_for(pilot, lambda: table.row_count >= 1, timeout=10)
        assert str(table.get_row_at(0)[2]) == "recorder_started"
        pid = int(app_proc.do("spawn"))
        await wait_for(pilot, lambda: any(e.process.pid == pid for e in screen.events), timeout=10)
        os.kill(pid, signal.SIGKILL)
        await wait_for(
            pilot,
            lambda: any(e.kind == 2 and e.process.pid == pid for e in screen.events),
            timeout=10,
        )
        await pilot.pause(0.3)
        text = screen_text(app)
        assert f"process {pid} (sleep) exited, killed by SIGKILL (exit 137)" in text
        await pilot.press("G")
        await pilot.pause()
        detail = str(screen.query_one("#ev-detail", Static).render())
        assert "exit status 137" in detail and "signal=SIGKILL" in detail
        await pilot.press("w")
        await pilot.pause()
        kinds = {str(table.get_row_at(i)[1]) for i in range(table.row_count)}
        assert kinds <= {"WARN", "CRIT"}
