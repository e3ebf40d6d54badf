"""The TUI on the sandbox pod: a Pilot drives the real app against the real sidecar.

What an engineer sees is checked on the rendered screen (the text of the
screenshot Textual exports), not in widget internals: the home screen
follows the shell-less app's log lines, and the process table lists the app,
its worker, the sidecar and pause, each under its container.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable

import pytest

from sidecar.sandbox.harness import Sandbox
from tui.app import make_app
from tui.client import Client

pytestmark = pytest.mark.sandbox
SIZE = (140, 40)


def screen_text(app) -> str:  # type: ignore[no-untyped-def]
    """The characters on screen, as the exported SVG draws them."""
    svg = app.export_screenshot()
    runs = re.findall(r"<text[^>]*>([^<]*)</text>", svg)
    return html.unescape(" ".join(runs)).replace("\xa0", " ")


async def wait_for_screen(pilot, app, ok: Callable[[str], bool], what: str) -> str:  # type: ignore[no-untyped-def]
    """Let the app work until the screen satisfies ``ok`` (or fail after ~15 s)."""
    text = ""
    for _ in range(60):
        await pilot.pause(0.25)
        text = screen_text(app)
        if ok(text):
            return text
    raise AssertionError(f"{what} never appeared; the screen shows:\n{text[-2000:]}")


async def test_home_follows_the_apps_logs_and_tab_2_lists_its_processes(
    sandbox_pod: Sandbox, sandbox_client: Client
) -> None:
    """Logs screen shows the app's records as they come; the process table shows app and worker."""
    app = make_app(sandbox_client)
    async with app.run_test(size=SIZE) as pilot:
        # JSON records read lnav-style: the message, then key=value fields.
        first = await wait_for_screen(
            pilot, app, lambda t: "job done" in t, "a 'job done' record of the worker"
        )
        jobs = set(re.findall(r"\bjob=(\d+)", first))
        # Following: records written after the screen opened show up without a key press.
        await wait_for_screen(
            pilot,
            app,
            lambda t: bool(set(re.findall(r"\bjob=(\d+)", t)) - jobs),
            "a newer job record",
        )
        await pilot.press("2")
        table = await wait_for_screen(
            pilot,
            app,
            lambda t: re.search(rf"\b{sandbox_pod.app_pid}\s+demo-app\s+app\b", t) is not None,
            f"the app (pid {sandbox_pod.app_pid}) in the process table",
        )
        rows = re.findall(r"^\s*(\d+)\s+(\S+)\s+(\S+)\s", table, re.M)
        containers = {int(pid): cont for pid, cont, _user in rows}
        assert containers.get(1) == "pause"
        assert containers.get(sandbox_pod.sidecar_pid) == "borescope"
        assert list(containers.values()).count("demo-app") >= 2, "the app and its worker"
        assert "/usr/local/bin/demo-ap" in table
