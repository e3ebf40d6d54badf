"""How the shell's screens look (pytest-textual-snapshot), at 120x40 and 80x24.

Data and clocks are frozen: the connection watcher is off and the header is
fed a fixed status; the Overview is fed ``fixed_overview()`` through its
public ``freeze``. The app still runs against a real sidecar (other screens
may talk to it), but nothing live reaches a snapshot.

Update after an intended change with ``pytest tests/tui/test_snapshots.py
--snapshot-update`` and look at the report before committing.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
from textual.pilot import Pilot

from tests.conftest import Running
from tests.tui.conftest import fixed_info, fixed_overview
from tui import recent
from tui.app import make_app
from tui.connection import Status
from tui.messages import CONNECTED, RECONNECTING

SIZES = [(120, 40), (80, 24)]


def frozen(
    state: str = CONNECTED, then: Callable[[Pilot[Any]], Awaitable[None]] | None = None
) -> Callable[[Pilot[Any]], Awaitable[None]]:
    """A run_before: fixed header, the Overview with fixed data, then ``then``."""

    async def run_before(pilot: Pilot[Any]) -> None:
        app: Any = pilot.app
        # The sidecar's port is random; what the screens show as "the address" is not.
        app.client.target = dataclasses.replace(app.client.target, address="127.0.0.1:7777")
        await pilot.press("6")
        await pilot.pause()
        app.screen.freeze(fixed_overview())
        if state == CONNECTED:
            app.show_status(Status(CONNECTED, latency_ms=3.0, info=fixed_info()))
        else:
            app.show_status(Status(state, detail="UNAVAILABLE", info=fixed_info(), attempt=3))
        app.clear_notifications()
        await pilot.pause()
        if then is not None:
            await then(pilot)
        await pilot.pause()

    return run_before


def mute(app: Any) -> None:
    """Drop notifications from now on: the dead channel's late errors are not the subject."""
    app.clear_notifications()
    app.notify = lambda *_a, **_k: None


async def quiet(app: Any, screen: Any) -> None:
    """Wait for the workers of ``screen`` (not other screens' endless streams) to finish.

    Not ``workers.wait_for_complete(list)``: given an empty list it waits for every worker.
    """
    mine = [w.wait() for w in app.workers if w.node is screen]
    await asyncio.gather(*mine, return_exceptions=True)


def app_for(sidecar: Running) -> Any:
    return make_app(sidecar.client, watch_connection=False)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_overview(snap_compare: Any, pilot_sidecar: Running, size: tuple[int, int]) -> None:
    """Overview: pod, limits as bars, containers, sparklines, top processes (a hostile name
    escaped), listeners, events; header with pod, container and latency; footer keys."""
    assert snap_compare(app_for(pilot_sidecar), terminal_size=size, run_before=frozen())


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_overview_light_theme(
    snap_compare: Any, pilot_sidecar: Running, size: tuple[int, int]
) -> None:
    """The same Overview in the light theme (f2) stays readable."""

    async def light(pilot: Pilot[Any]) -> None:
        await pilot.press("f2")

    assert snap_compare(app_for(pilot_sidecar), terminal_size=size, run_before=frozen(then=light))


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_reconnecting_header(
    snap_compare: Any, pilot_sidecar: Running, size: tuple[int, int]
) -> None:
    """While the sidecar is unreachable the header says "Reconnecting… (attempt 3)"."""
    assert snap_compare(app_for(pilot_sidecar), terminal_size=size, run_before=frozen(RECONNECTING))


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_help_overlay(snap_compare: Any, pilot_sidecar: Running, size: tuple[int, int]) -> None:
    """`?` over the Overview: the screen's keys, then the app's."""

    async def help_(pilot: Pilot[Any]) -> None:
        await pilot.press("question_mark")

    assert snap_compare(app_for(pilot_sidecar), terminal_size=size, run_before=frozen(then=help_))


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_target_picker(
    snap_compare: Any,
    pilot_sidecar: Running,
    size: tuple[int, int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """ctrl+t: the address input, the recent addresses, and the pods section."""
    for address in ("10.0.0.9:7777", "127.0.0.1:7777"):
        recent.remember(address)
    # Freeze the Kubernetes part: a fixed discovery answer instead of this machine's kubeconfig.
    import tui.screens.target_picker as picker

    monkeypatch.setattr(
        picker,
        "discover_kube_targets",
        lambda: [picker.KubeChoice("pod/checkout-7d9f8b-x2x9z", "prod-eu", "shop")],
    )

    async def pick(pilot: Pilot[Any]) -> None:
        await pilot.press("ctrl+t")

    assert snap_compare(app_for(pilot_sidecar), terminal_size=size, run_before=frozen(then=pick))


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_command_palette(snap_compare: Any, pilot_sidecar: Running, size: tuple[int, int]) -> None:
    """ctrl+p with "pid 7" typed: the palette offers to jump to pid 7."""

    async def palette(pilot: Pilot[Any]) -> None:
        await pilot.press("ctrl+p")
        await pilot.pause()
        await pilot.press(*"pid 7")
        await pilot.pause(0.5)

    assert snap_compare(app_for(pilot_sidecar), terminal_size=size, run_before=frozen(then=palette))


# --- Screens of the capability engineers, with frozen data where they allow it ----


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_network_screen(snap_compare: Any, size: tuple[int, int]) -> None:
    """Network (4): listeners, socket states and connections by remote, from fixed data
    drawn through the screen's own show() once its live refresh has gone quiet.

    The app's channel points at a closed port: live data would size the table columns
    differently on every machine, so the live refresh must find nothing."""
    from tests.tui.conftest import fixed_net
    from tui.client import Client, Target

    async def network(pilot: Pilot[Any]) -> None:
        app: Any = pilot.app
        await pilot.press("4")
        await pilot.pause(0.3)
        screen = app.screen
        await quiet(app, screen)
        if getattr(screen, "_timer", None) is not None:
            screen._timer.pause()  # the screen's refresh timer: nothing live after this
        screen.show(fixed_net())
        await pilot.pause()
        mute(app)

    client = Client(Target("127.0.0.1:1"))
    try:
        app = make_app(client, watch_connection=False)
        assert snap_compare(app, terminal_size=size, run_before=frozen(then=network))
    finally:
        client.close()


@pytest.fixture(scope="module")
def sandbox_client() -> Iterator[Any]:
    """A client of a sandbox pod: its app root is the same fixed, shell-less tree every run."""
    import os

    if os.geteuid() != 0:
        pytest.skip("the sandbox pod needs root (namespaces, chroot)")
    from sidecar.sandbox.start import start_sandbox
    from tui.client import Client, Target

    sb = start_sandbox("pod", interval=0.25)
    client = Client(Target(sb.address, sb.token))
    try:
        yield client
    finally:
        client.close()
        sb.close()


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_files_screen(snap_compare: Any, sandbox_client: Any, size: tuple[int, int]) -> None:
    """Files (3) on the sandbox pod's shell-less root: the top of the tree (no /bin/sh),
    the preview pane waiting for a selection, the screen's keys in the footer."""

    async def files(pilot: Pilot[Any]) -> None:
        app: Any = pilot.app
        await pilot.press("3")
        for _ in range(100):  # the first ListDir answers in a few ms; allow a slow machine
            if any("usr" in str(c.label) for c in app.screen.file_tree.root.children):
                break
            await pilot.pause(0.05)
        await quiet(app, app.screen)
        mute(app)

    app = make_app(sandbox_client, watch_connection=False)
    assert snap_compare(app, terminal_size=size, run_before=frozen(then=files))


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_processes_screen(snap_compare: Any, size: tuple[int, int]) -> None:
    """Processes (2): the fixed pod's processes (a hostile cmdline escaped) drawn through
    the screen's own show_list() once its live refresh has gone quiet (dead channel, as
    for Network: live rows would differ on every machine)."""
    from tests.tui.conftest import fixed_processes
    from tui.client import Client, Target

    async def processes(pilot: Pilot[Any]) -> None:
        app: Any = pilot.app
        await pilot.press("2")
        await pilot.pause(0.3)
        screen = app.screen
        await quiet(app, screen)
        if getattr(screen, "_timer", None) is not None:
            screen._timer.pause()  # the screen's refresh timer: nothing live after this
        screen.show_list(*fixed_processes())
        await pilot.pause()
        mute(app)

    client = Client(Target("127.0.0.1:1"))
    try:
        app = make_app(client, watch_connection=False)
        assert snap_compare(app, terminal_size=size, run_before=frozen(then=processes))
    finally:
        client.close()
