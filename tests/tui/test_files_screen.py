# ruff: noqa: F811  (pytest fixtures are parameters named like the imported fixture)
"""Pilot tests of the Files screen against a real sidecar and a hostile chrooted target."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import Input, Log

from tests.integration.hostile_root import Target, is_root

# The shared module-scoped fixture, imported under the name the tests use.
from tests.integration.hostile_root import sidecar_target as target  # noqa: F401
from tests.tui.conftest import screen_text
from tui.app import BorescopeApp, make_app
from tui.screens.files import FilesScreen

pytestmark = [
    pytest.mark.skipif(not is_root(), reason="needs root: mount namespace, chroot, mknod"),
    pytest.mark.timeout(60),
]
SIZE = (120, 40)


async def wait_for(pilot: Pilot[Any], cond: Callable[[], bool], timeout: float = 8.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await pilot.pause(0.05)


def notes(app: BorescopeApp) -> list[str]:
    return [str(n.message) for n in app._notifications]


async def files_screen(app: BorescopeApp, pilot: Pilot[Any], target: Target) -> FilesScreen:
    await pilot.press("3")
    await wait_for(pilot, lambda: isinstance(app.screen, FilesScreen))
    screen = app.screen
    assert isinstance(screen, FilesScreen)
    screen.set_container(target.sel.id)
    await wait_for(pilot, lambda: len(screen.file_tree.root.children) > 10)
    return screen


def labels(screen: FilesScreen) -> list[str]:
    return [str(n.label) for n in screen.file_tree.root.children]


async def test_tree_preview_and_hostile_names(target: Target) -> None:
    """The tree lists the container's root; hostile names show escaped; a file previews with its text."""
    app = make_app(target.r.client, watch_connection=False)
    async with app.run_test(size=SIZE) as pilot:
        screen = await files_screen(app, pilot, target)
        assert {"app", "etc", "names", "fifo"} <= set(labels(screen))
        assert any(label.startswith("abs_canary -> ") for label in labels(screen))
        screen.open_path("/names")
        await wait_for(pilot, lambda: any("red" in label for label in labels(screen)))
        await pilot.pause()
        text = screen_text(app)
        assert "\x1b[31m" not in text and "\\x1b[31mred" in text and "new\\nline" in text
        screen.open_path("/etc/passwd")
        await wait_for(pilot, lambda: "app:x:1000" in screen_text(app))
        assert "root:x:0:0" in screen_text(app)
        screen.open_path("/abs_canary")
        await wait_for(pilot, lambda: any("NOT_FOUND" in n for n in notes(app)))
        assert target.h.canary.decode() not in screen_text(app)


async def test_follow_download_find(target: Target, tmp_path: Path) -> None:
    """f follows appended lines; d downloads into a chosen directory (verified); / finds by glob."""
    log = target.h.root / "tmp/screen.log"
    log.write_bytes(b"line one\n")
    app = make_app(target.r.client, watch_connection=False)
    async with app.run_test(size=SIZE) as pilot:
        screen = await files_screen(app, pilot, target)
        screen.follow_path("/tmp/screen.log")
        follow = screen.query_one("#fp-follow", Log)
        await wait_for(pilot, lambda: any("line one" in line for line in follow.lines))
        with open(log, "ab") as f:
            f.write(b"line \x1b[2Jtwo\n")
        await wait_for(pilot, lambda: any("two" in line for line in follow.lines))
        assert not any("\x1b" in line for line in follow.lines)
        await pilot.press("f")  # stops following
        await wait_for(pilot, lambda: not screen.preview.following)

        await pilot.press("d")
        await wait_for(pilot, lambda: bool(app.screen.query(Input)))
        app.screen.query_one(Input).value = str(tmp_path)
        await pilot.press("enter")
        await wait_for(pilot, lambda: any("sha256 verified" in n for n in notes(app)))
        assert (tmp_path / "screen.log").read_bytes() == log.read_bytes()

        await pilot.press("backspace")  # up from /tmp to /
        await wait_for(pilot, lambda: screen.root_path == "/")
        await pilot.press("slash")
        await wait_for(pilot, lambda: bool(app.screen.query(Input)))
        app.screen.query_one(Input).value = "ok.*"
        await pilot.press("enter")
        await wait_for(pilot, lambda: "/app/ok.txt" in labels(screen))


async def test_big_directory_loads_page_by_page(target: Target) -> None:
    """A 10k-entry directory shows its first 1000 entries and a node that loads the next page."""
    app = make_app(target.r.client, watch_connection=False)
    async with app.run_test(size=SIZE) as pilot:
        screen = await files_screen(app, pilot, target)
        screen.open_path("/big")
        await wait_for(pilot, lambda: len(screen.file_tree.root.children) == 1001)
        more = screen.file_tree.root.children[-1]
        assert "9000 more" in str(more.label)
        screen.file_tree.select_node(more)
        await wait_for(pilot, lambda: len(screen.file_tree.root.children) == 2001)
        names = [str(n.label) for n in screen.file_tree.root.children[:2000]]
        assert names == [f"f{i:05d}" for i in range(2000)]


async def test_container_switch(target: Target) -> None:
    """c lists the pod's containers in a prompt; the chosen one is browsed and named in the tree."""
    app = make_app(target.r.client, watch_connection=False)
    async with app.run_test(size=SIZE) as pilot:
        screen = await files_screen(app, pilot, target)
        screen.set_container("")
        await pilot.press("c")
        await wait_for(pilot, lambda: bool(app.screen.query(Input)))
        await wait_for(pilot, lambda: target.sel.id in screen_text(app))
        app.screen.query_one(Input).value = target.sel.id
        await pilot.press("enter")
        await wait_for(pilot, lambda: "names" in labels(screen))
        assert f"[{target.sel.id}]" in str(screen.file_tree.root.label)
