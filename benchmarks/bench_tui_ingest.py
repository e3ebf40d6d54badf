"""Home-screen ingest: key-press latency and memory while 10k lines/s stream in.

A sidecar in its own process follows a file that a writer process appends to
at 10,000 lines/s; the TUI (headless, 120x40, a real Textual app driven by a
Pilot) follows it on its home screen. Every 0.25 s a key is pressed ('l',
which re-filters every kept line: the heaviest key on the screen) and the
time until the app has handled it is measured. The anchor is the same key
pressed with no ingest, in the same run. Memory: the process's RSS a third of
the way in (long past the line cap) and at the end; flat means within 10%.

    .venv/bin/python -m benchmarks.bench_tui_ingest [--quick] [--seconds N]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from textual import events  # noqa: E402

from benchmarks.bench_follow import start_sidecar  # noqa: E402
from tui.app import make_app  # noqa: E402
from tui.client import Client, Target  # noqa: E402
from tui.screens.logs import LINE_CAP, LogsScreen  # noqa: E402

PACED = r"""
import os, sys, time
path, rate, seconds = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
fd = os.open(path, os.O_WRONLY | os.O_APPEND)
t0 = time.monotonic()
i = 0
while time.monotonic() - t0 < seconds:
    due = int((time.monotonic() - t0) * rate)
    if due > i:
        os.write(fd, b"".join(b"2024-01-01T00:00:00.000Z INFO ingest line %d\n" % k for k in range(i, due)))
        i = due
    time.sleep(0.005)
os.close(fd)
print(i, flush=True)
"""


def rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / (1 << 20)


class FrameClock:
    """Records when the screen finishes composing a frame (wraps its compositor refresh)."""

    def __init__(self, screen: LogsScreen) -> None:
        self.frames: list[float] = []
        original = screen._compositor_refresh

        def refresh() -> None:
            original()
            self.frames.append(time.perf_counter())

        screen._compositor_refresh = refresh  # type: ignore[method-assign]

    async def next_after(self, t: float, timeout: float = 5.0) -> float:
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            later = [f for f in self.frames[-8:] if f > t]
            if later:
                return later[0]
            await asyncio.sleep(0.001)
        return deadline


async def press_times(
    app: object, screen: LogsScreen, clock: FrameClock, count: int, gap: float
) -> list[float]:
    """Milliseconds from a key event to the first frame composed after its action ran.

    Keys alternate between 'space' (pause / follow again, which writes the held
    lines) and 'l' (next minimum level: re-filters and rewrites every kept line).
    Pilot.press is not used: it waits for the whole app to be idle, which a
    screen taking 10k lines/s never is.
    """
    out: list[float] = []
    driver = app._driver  # type: ignore[attr-defined]
    for i in range(count):
        key = "space" if i % 2 == 0 else "l"
        before = (screen.following, screen.min_level)
        event = events.Key(key, " " if key == "space" else key)
        event.set_sender(app)  # type: ignore[arg-type]
        t0 = time.perf_counter()
        driver.send_message(event)
        while (screen.following, screen.min_level) == before:
            await asyncio.sleep(0.0005)
        handled = time.perf_counter()
        frame = await clock.next_after(handled)
        out.append((frame - t0) * 1000)
        await asyncio.sleep(gap)
    screen.min_level = 0
    screen.following = True
    return out


async def run(client: Client, path: str, seconds: float) -> dict[str, object]:
    app = make_app(client, watch_connection=False)
    async with app.run_test(size=(120, 40)):
        screen = app.screen
        assert isinstance(screen, LogsScreen)
        await asyncio.sleep(1.0)
        clock = FrameClock(screen)
        idle = await press_times(app, screen, clock, 12, 0.1)
        writer = subprocess.Popen(
            [sys.executable, "-c", PACED, path, "10000", str(seconds)], stdout=subprocess.PIPE
        )
        start = time.monotonic()
        while screen.received < LINE_CAP and time.monotonic() - start < seconds:
            await asyncio.sleep(0.1)
        settle = time.monotonic() + seconds / 3  # past the cap, buffers and caches warm
        busy: list[float] = []
        rss_mid = 0.0
        while writer.poll() is None:
            busy += await press_times(app, screen, clock, 4, 0.25)
            if not rss_mid and time.monotonic() > settle:
                rss_mid = rss_mib()
        assert writer.stdout is not None
        written = int(writer.stdout.read())
        deadline = time.monotonic() + 10
        while screen.received < written and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        rss_end = rss_mib()
        return {
            "idle": idle,
            "busy": busy,
            "rss_cap": rss_mid or rss_mib(),
            "rss_end": rss_end,
            "written": written,
            "received": screen.received,
            "lines": len(screen.line_rows),
        }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="8 s of ingest")
    ap.add_argument("--seconds", type=float, default=0)
    args = ap.parse_args(argv)
    seconds = args.seconds or (8.0 if args.quick else 30.0)
    tmp = tempfile.mkdtemp(prefix="bs-bench-ingest-")
    path = os.path.join(tmp, "app.log")
    Path(path).touch()
    app_proc = subprocess.Popen(["sleep", "3600"])
    server, port, token = start_sidecar(app_proc.pid, path)
    try:
        client = Client(Target(f"127.0.0.1:{port}", token))
        client.wait_ready(10)
        res = asyncio.run(run(client, path, seconds))
        client.close()
        print(
            "key press latencies under ingest (ms):",
            [round(x) for x in res["busy"]],
            file=sys.stderr,
        )  # type: ignore[union-attr]
        busy = sorted(res["busy"])  # type: ignore[arg-type]
        idle = sorted(res["idle"])  # type: ignore[arg-type]
        p99 = busy[max(0, int(len(busy) * 0.99) - 1)]
        print(
            f"tui_keypress_p99 at 10k lines/s ({len(busy)} presses, {res['received']}/{res['written']} "
            f"lines shown): {p99:.0f} ms (median {statistics.median(busy):.0f}) | anchor: idle p99 "
            f"{idle[max(0, int(len(idle) * 0.99) - 1)]:.0f} ms | ratio: {p99 / 100:.2f} of the goal "
            f"(goal: <= 100 ms)"
        )
        growth = res["rss_end"] / res["rss_cap"]  # type: ignore[operator]
        print(
            f"tui_memory at the {LINE_CAP}-line cap: {res['rss_end']:.0f} MiB at the end | anchor: "
            f"{res['rss_cap']:.0f} MiB a third of the way in | ratio: {growth:.2f} "
            f"(goal: flat, <= 1.10; lines kept {res['lines']})"
        )
        return 0
    finally:
        if server.stdin is not None:
            server.stdin.close()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
        app_proc.kill()
        app_proc.wait()
        Path(path).unlink(missing_ok=True)
        os.rmdir(tmp)


if __name__ == "__main__":
    sys.exit(main())
