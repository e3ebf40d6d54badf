"""The app keeps full GC passes short while it runs, and gives the collector back on exit."""

from __future__ import annotations

import gc

from tests.conftest import Running
from tests.tui.test_app import wait_for
from tui import heap
from tui.app import make_app


async def test_start_up_heap_is_frozen_while_running_and_released_on_exit(
    pilot_sidecar: Running,
) -> None:
    """Once the home screen is up, what start-up built is frozen and young collections are
    rarer; when the app ends, nothing stays frozen and the thresholds are as before."""
    before = gc.get_threshold()
    app = make_app(pilot_sidecar.client)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: heap.frozen() > 0)
        assert gc.get_threshold()[0] == max(before[0], heap.YOUNG_THRESHOLD)
        assert gc.get_threshold()[1:] == before[1:]
    assert heap.frozen() == 0
    assert gc.get_threshold() == before
