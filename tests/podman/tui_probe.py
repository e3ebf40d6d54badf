"""Start the real TUI headless against a sidecar and wait for text on its screens.

Run inside the pod's network namespace (the sidecar is on the pod's
loopback): ``nsenter --net=NS python -m tests.podman.tui_probe --addr A
--expect-home TEXT --expect-processes TEXT``; the token comes from
$BORESCOPE_TOKEN. Exit 0 when every expected text appeared on its screen,
1 otherwise, printing what the screen showed.
"""

from __future__ import annotations

import argparse
import asyncio
import html
import os
import re
import sys
from collections.abc import Sequence
from typing import Any

from tui.app import make_app
from tui.client import Client, Target

SIZE = (140, 40)


def screen_text(app: Any) -> str:
    """The characters on screen, as the exported SVG draws them."""
    runs = re.findall(r"<text[^>]*>([^<]*)</text>", app.export_screenshot())
    return html.unescape(" ".join(runs)).replace("\xa0", " ")


async def wait_for(pilot: Any, app: Any, texts: Sequence[str], timeout: float) -> str:
    """Until every one of ``texts`` is on screen; returns the screen (raises on timeout)."""
    text = ""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        await pilot.pause(0.25)
        text = screen_text(app)
        if all(t in text for t in texts):
            return text
    missing = [t for t in texts if t not in text]
    raise AssertionError(f"never on screen: {missing}; the screen shows:\n{text[-3000:]}")


async def probe(
    client: Client, home: Sequence[str], processes: Sequence[str], timeout: float
) -> None:
    """Open the app, check the home screen (logs) then the process screen (key 2)."""
    app = make_app(client)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, app, home, timeout)
        await pilot.press("2")
        await wait_for(pilot, app, processes, timeout)
        print("home and processes screens OK")


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments, connect, probe; exit status says whether it worked."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--addr", required=True)
    p.add_argument("--expect-home", action="append", default=[])
    p.add_argument("--expect-processes", action="append", default=[])
    p.add_argument("--timeout", type=float, default=20.0)
    args = p.parse_args(argv)
    client = Client(Target(args.addr, os.environ.get("BORESCOPE_TOKEN", "")))
    try:
        client.wait_ready(10)
        asyncio.run(probe(client, args.expect_home, args.expect_processes, args.timeout))
    except AssertionError as e:
        print(str(e), file=sys.stderr)
        return 1
    finally:
        client.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
