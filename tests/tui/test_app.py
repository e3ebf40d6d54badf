"""Pilot tests of the app shell against a real in-process sidecar over a real channel."""

from __future__ import annotations

import asyncio
import importlib
import time
from collections.abc import Callable
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.screen import Screen

from sidecar.config import Config
from sidecar.deps import Deps
from sidecar.server import build
from tests.conftest import Running, new_token, start_sidecar
from tests.tui.conftest import screen_text
from tui import recent
from tui.app import SCREENS, BorescopeApp, make_app
from tui.client import Client, Target
from tui.connection import CHANNEL_OPTIONS
from tui.messages import CONNECTED, RECONNECTING

SIZE = (120, 40)


async def wait_for(pilot: Pilot[Any], cond: Callable[[], bool], timeout: float = 5.0) -> None:
    """Let the app run until ``cond()`` holds; fail with a clear message after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        # A plain sleep: the app runs on this loop. (pilot.pause also waits for every
        # widget to go idle, which a busy live screen may not do on a loaded machine.)
        await asyncio.sleep(0.05)


def header_line(app: BorescopeApp) -> str:
    """The top line of the screen ("" while the screen is mid-layout)."""
    return (screen_text(app).splitlines() or [""])[0]


def notes(app: BorescopeApp) -> list[str]:
    return [str(n.message) for n in app._notifications]


async def test_header_shows_pod_container_state_and_latency(pilot_sidecar: Running) -> None:
    """The header names the pod and container and shows "connected" with a round trip in ms."""
    app = make_app(pilot_sidecar.client, ping_interval=0.2)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.header_state.latency_ms is not None)
        s = app.header_state
        assert s.state == CONNECTED and s.pod == "pilot-pod" and s.container
        await pilot.pause()
        first_line = header_line(app)
        assert "pilot-pod" in first_line and "connected" in first_line and " ms" in first_line
        # Screens that keep Textual's stock Header see the same facts in sub_title.
        assert "pilot-pod" in app.sub_title and "connected" in app.sub_title


async def test_number_keys_switch_every_screen(pilot_sidecar: Running) -> None:
    """1-6 switch to Logs, Processes, Files, Network, Events and Overview; Logs is home."""
    app = make_app(pilot_sidecar.client)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert app.current_mode == "logs"
        for mode, (_m, cls, key, title) in SCREENS.items():
            await pilot.press(key)
            await wait_for(pilot, lambda m=mode: app.current_mode == m)
            assert type(app.screen).__name__ == cls
            assert app.screen.title == title or app.screen.title


async def test_help_lists_screen_and_app_keys(pilot_sidecar: Running) -> None:
    """`?` opens an overlay generated from the bindings: the screen's keys and the app's."""
    app = make_app(pilot_sidecar.client)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("6")
        await wait_for(pilot, lambda: app.current_mode == "overview")
        await pilot.press("question_mark")
        await wait_for(pilot, lambda: type(app.screen).__name__ == "HelpScreen")
        text = screen_text(app)
        for words in ("Keys: Overview", "Refresh", "Everywhere", "Quit", "Target", "Theme"):
            assert words in text, words
        rows = app.screen.rows  # type: ignore[attr-defined]
        groups = [r[0] for r in rows]
        assert groups[0] == "Overview" and "Everywhere" in groups
        assert rows[0][2] == "Refresh"  # the screen's own keys first
        await pilot.press("escape")
        await wait_for(pilot, lambda: type(app.screen).__name__ == "OverviewScreen")


@pytest.mark.parametrize("mode", list(SCREENS))
def test_every_binding_has_a_description(mode: str) -> None:
    """The help overlay is generated from BINDINGS, so each one must say what it does."""
    module, cls, _key, _title = SCREENS[mode]
    screen_cls: type[Screen[Any]] = getattr(importlib.import_module(f"tui.screens.{module}"), cls)
    for klass in (BorescopeApp, screen_cls):
        for b in klass.BINDINGS:
            binding = b if not isinstance(b, tuple) else None
            assert binding is not None and binding.description, f"{klass.__name__}: {b!r}"


async def test_palette_jump_to_pid_goes_to_processes(pilot_sidecar: Running) -> None:
    """ctrl+p, "pid 1", enter: the Processes screen opens and its select_pid hook is called
    (or, while that screen lacks the hook, a warning says so instead of failing silently)."""
    app = make_app(pilot_sidecar.client)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("ctrl+p")
        await wait_for(pilot, lambda: type(app.screen).__name__ == "CommandPalette")
        await pilot.press(*"pid 1")
        await pilot.pause(0.5)
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.current_mode == "processes")
        if hasattr(app.screen, "select_pid"):
            await pilot.pause(0.3)
            assert not any("select_pid" in n for n in notes(app))
        else:
            await wait_for(pilot, lambda: any("select_pid" in n for n in notes(app)))


async def test_palette_prompt_opens_a_path_in_files(pilot_sidecar: Running) -> None:
    """ctrl+p "Open a path…" asks for the path, then the Files screen gets open_path(path)."""
    app = make_app(pilot_sidecar.client)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("ctrl+p")
        await wait_for(pilot, lambda: type(app.screen).__name__ == "CommandPalette")
        await pilot.press(*"Open a path")
        await pilot.pause(0.5)
        await pilot.press("enter")
        await wait_for(pilot, lambda: type(app.screen).__name__ == "Prompt")
        await pilot.press(*"/etc/hostname", "enter")
        await wait_for(pilot, lambda: app.current_mode == "files")
        if not hasattr(app.screen, "open_path"):
            await wait_for(pilot, lambda: any("open_path" in n for n in notes(app)))


def _serve_on(port: int, config: Config) -> Any:
    sc = build(f"127.0.0.1:{port}", config, Deps.from_config(config))
    sc.start()
    return sc


async def test_reconnects_with_visible_state_after_sidecar_restart(
    fixed_app_process: Any,
) -> None:
    """Sidecar gone: "Reconnecting…" is on screen and a warning says why; sidecar back on the
    same address and ctrl+r ("Retry now"): the app reconnects and says so."""
    token, digest = new_token()
    config = Config(local_root=fixed_app_process.pid, pod_name="pilot-pod", token_sha256=digest)
    first = start_sidecar(config, token=token)
    port = first.sidecar.port
    client = Client(Target(first.address, token), options=CHANNEL_OPTIONS)
    app = make_app(client, ping_interval=0.2)
    second = None
    try:
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(pilot, lambda: app.header_state.state == CONNECTED)
            # The Overview: a calm screen (the home screen may be busy ingesting logs).
            await pilot.press("6")
            # Off the event loop: stopping a server joins its threads.
            await asyncio.to_thread(first.sidecar.stop, 0)
            await wait_for(pilot, lambda: app.header_state.state == RECONNECTING)
            await wait_for(pilot, lambda: "Reconnecting…" in header_line(app))
            await wait_for(pilot, lambda: any("Connection lost" in n for n in notes(app)))
            second = await asyncio.to_thread(_serve_on, port, config)
            await pilot.press("ctrl+r")  # "Retry now": skip the rest of the backoff wait
            await wait_for(pilot, lambda: app.header_state.state == CONNECTED, timeout=15)
            await wait_for(pilot, lambda: any("Reconnected" in n for n in notes(app)))
            await wait_for(pilot, lambda: "● connected" in header_line(app))
    finally:
        first.client.close()
        client.close()
        if second is not None:
            second.stop(0)


async def test_switch_target_without_restart(fixed_app_process: Any, monkeypatch: Any) -> None:
    """ctrl+t, type another sidecar's address, enter: the app now shows that pod, the screens
    are rebuilt on it, and the address is first in the recent list."""
    token, digest = new_token()
    monkeypatch.setenv("BORESCOPE_TOKEN", token)
    a = start_sidecar(
        Config(local_root=fixed_app_process.pid, pod_name="pod-a", token_sha256=digest), token=token
    )
    b = start_sidecar(
        Config(local_root=fixed_app_process.pid, pod_name="pod-b", token_sha256=digest), token=token
    )
    client = Client(Target(a.address, token))
    app = make_app(client)
    try:
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(pilot, lambda: app.header_state.pod == "pod-a")
            await pilot.press("6")
            await wait_for(pilot, lambda: app.current_mode == "overview")
            before = app.screen
            await pilot.press("ctrl+t")
            await wait_for(pilot, lambda: type(app.screen).__name__ == "TargetPicker")
            await pilot.press(*b.address, "enter")
            await wait_for(pilot, lambda: app.header_state.pod == "pod-b", timeout=10)
            await wait_for(pilot, lambda: app.current_mode == "overview")
            assert app.client.target.address == b.address
            assert app.screen is not before
            assert recent.load()[0] == b.address
            await wait_for(pilot, lambda: "pod-b" in header_line(app))
    finally:
        for r in (a, b):
            r.client.close()
            r.sidecar.stop(0)


async def test_switch_to_unreachable_target_keeps_current(pilot_sidecar: Running) -> None:
    """A target that does not answer is one error notification; the current target stays."""
    app = make_app(pilot_sidecar.client)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.header_state.pod == "pilot-pod")
        # Port 1 on loopback: nothing listens there, the dial fails fast.
        app.switch_target(Target("127.0.0.1:1"))
        await wait_for(pilot, lambda: any("Cannot switch" in n for n in notes(app)), timeout=10)
        assert app.client is pilot_sidecar.client
        assert app.header_state.pod == "pilot-pod"


async def test_worker_exceptions_become_notifications(pilot_sidecar: Running) -> None:
    """A worker that raises (exit_on_error True or False) is an error notification with the
    traceback in the crash log: the app keeps running and no traceback reaches the screen."""
    app = make_app(pilot_sidecar.client)

    def boom() -> None:
        raise RuntimeError("kaboom-7c1")

    def boom_loud() -> None:
        raise ValueError("kaboom-loud-91")

    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        app.run_worker(boom, thread=True, exit_on_error=False)
        app.run_worker(boom_loud, thread=True)
        await wait_for(pilot, lambda: sum("kaboom" in n for n in notes(app)) == 2)
        assert app.is_running
        assert "Traceback" not in screen_text(app)
        log = (recent.state_dir() / "tui-errors.log").read_text()
        assert "kaboom-7c1" in log and "Traceback" in log


async def test_theme_toggles_dark_and_light(pilot_sidecar: Running) -> None:
    """f2 switches between the dark and the light theme."""
    app = make_app(pilot_sidecar.client)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert app.theme == "textual-dark"
        await pilot.press("f2")
        assert app.theme == "textual-light"
        await pilot.press("f2")
        assert app.theme == "textual-dark"
