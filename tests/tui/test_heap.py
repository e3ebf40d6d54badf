"""The app keeps full GC passes short while it runs, and gives the collector back on exit."""

from __future__ import annotations

import gc
import weakref
from typing import Any

import pytest

from sidecar.config import Config
from tests.conftest import Running, new_token, start_sidecar
from tests.tui.test_app import wait_for
from tui import heap
from tui.app import make_app
from tui.client import Client, Target


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


async def test_screens_of_an_old_target_are_not_kept_frozen(
    fixed_app_process: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A target switch throws the screens away: they are released to the collector and
    collected (not frozen with the next settle), so switching back and forth leaks nothing."""
    token, digest = new_token()
    monkeypatch.setenv("BORESCOPE_TOKEN", token)
    sidecars = [
        start_sidecar(
            Config(local_root=fixed_app_process.pid, pod_name=f"pod-{n}", token_sha256=digest),
            token=token,
        )
        for n in "ab"
    ]
    client = Client(Target(sidecars[0].address, token))
    app = make_app(client)
    try:
        async with app.run_test(size=(100, 30)) as pilot:
            await wait_for(pilot, lambda: app.header_state.pod == "pod-a" and heap.frozen() > 0)
            old = weakref.ref(app.screen)
            app.switch_target(Target(sidecars[1].address, token))
            await wait_for(pilot, lambda: app.header_state.pod == "pod-b", timeout=10)
            await wait_for(pilot, lambda: old() is None and heap.frozen() > 0, timeout=10)
    finally:
        for r in sidecars:
            r.client.close()
            r.sidecar.stop(0)
