"""Home-screen ingest: key-press latency and memory while 10k lines/s stream in.

A sidecar in its own process follows a file that a writer process appends to
at 10,000 lines/s; the TUI (headless, 120x40, a real Textual app driven by a
Pilot) follows it on its home screen. Every 0.25 s a key is pressed ('space'
and 'l' in turn; 'l' re-filters and rewrites every kept line: the heaviest
key on the screen) and the time until the first frame composed after its
action ran is measured. The anchor is the same keys pressed with no ingest,
in the same run. Memory: the process's RSS a third of the way in (long past
the line cap) and at the end; flat means within 10%.

Two runs, each with a fresh sidecar and app: plain text lines, then JSON
lines (parsed into message + key=value fields for display, the default
rendering). The run checks that the writer's last line reached the screen.

    .venv/bin/python -m benchmarks.bench_tui_ingest [--quick] [--seconds N] [--format F]
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import gc
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
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
path, rate, seconds, fmt = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
if fmt == "json":
    line = (b'{"time":"2024-01-01T00:00:00.000Z","level":"info","msg":"ingest line %d",'
            b'"path":"/api/cart","status":200,"ms":12,"user":"u%d"}\n')
    make = lambda k: line % (k, k % 977)
else:
    make = lambda k: b"2024-01-01T00:00:00.000Z INFO ingest line %d\n" % k
fd = os.open(path, os.O_WRONLY | os.O_APPEND)
t0 = time.monotonic()
i = 0
while time.monotonic() - t0 < seconds:
    due = int((time.monotonic() - t0) * rate)
    if due > i:
        os.write(fd, b"".join(make(k) for k in range(i, due)))
        i = due
    time.sleep(0.005)
os.close(fd)
print(i, flush=True)
"""


def rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / (1 << 20)


class FrameClock:
    """Records when the screen finishes composing a frame (wraps its compositor refresh),
    and when a key's action changed the state the keys toggle (a watcher, run inside it)."""

    def __init__(self, screen: LogsScreen) -> None:
        self.frames: list[float] = []
        self.actions: list[float] = []  # when a pressed key's action changed the screen's state
        original = screen._compositor_refresh

        def acted() -> None:
            self.actions.append(time.perf_counter())

        screen.watch(screen, "following", acted, init=False)
        screen.watch(screen, "min_level", acted, init=False)

        def refresh() -> None:
            original()
            self.frames.append(time.perf_counter())

        screen._compositor_refresh = refresh  # type: ignore[method-assign]

    async def next_after(self, t: float, timeout: float = 5.0) -> float:
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            i = bisect.bisect_right(self.frames, t)
            if i < len(self.frames):
                return self.frames[i]
            await asyncio.sleep(0.001)
        return deadline


async def press_times(
    app: object, screen: LogsScreen, clock: FrameClock, count: int, gap: float
) -> list[float]:
    """Milliseconds from a key event to the first frame composed after its action ran.

    Keys alternate between 'space' (pause / follow again, which writes the held
    lines) and 'l' (next minimum level: re-filters and rewrites every kept line).
    Pilot.press is not used: it waits for the whole app to be idle, which a
    screen taking 10k lines/s never is. When the action ran is taken by a
    watcher on the reactive it changes (called inside the action), not by
    polling: a poller wakes after the action's own frame and would wait for the
    next one.
    """
    out: list[float] = []
    driver = app._driver  # type: ignore[attr-defined]
    ran = clock.actions
    for i in range(count):
        key = "space" if i % 2 == 0 else "l"
        event = events.Key(key, " " if key == "space" else key)
        event.set_sender(app)  # type: ignore[arg-type]
        ran.clear()
        t0 = time.perf_counter()
        driver.send_message(event)
        while not ran:
            await asyncio.sleep(0.0005)
        frame = await clock.next_after(ran[0])
        out.append((frame - t0) * 1000)
        await asyncio.sleep(gap)
    screen.min_level = 0
    screen.following = True
    return out


@dataclass
class Result:
    idle: list[float]
    busy: list[float]
    rss_cap: float
    rss_end: float
    written: int
    last_shown: bool  # the writer's last line reached the screen's model
    lines: int


async def run(client: Client, path: str, seconds: float, fmt: str) -> Result:
    app = make_app(client, watch_connection=False)
    async with app.run_test(size=(120, 40)):
        screen = app.screen
        assert isinstance(screen, LogsScreen)
        await asyncio.sleep(1.0)
        clock = FrameClock(screen)
        idle = await press_times(app, screen, clock, 12, 0.1)
        writer = subprocess.Popen(
            [sys.executable, "-c", PACED, path, "10000", str(seconds), fmt], stdout=subprocess.PIPE
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
        last = f"ingest line {written - 1}"
        deadline = time.monotonic() + 10
        shown = False
        while not shown and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
            shown = any(last in (r.message or r.text) for r in list(screen.rows)[-2000:])
        return Result(
            idle, busy, rss_mid or rss_mib(), rss_mib(), written, shown, len(screen.line_rows)
        )


def p99(xs: list[float]) -> float:
    """The 99th percentile, nearest rank below (with 100 presses: the second worst)."""
    s = sorted(xs)
    return s[max(0, int(len(s) * 0.99) - 1)]


def measure(fmt: str, seconds: float) -> Result:
    """One run: a fresh file, sidecar and app, ``fmt`` lines ("text" or "json")."""
    gc.collect()  # nothing of an earlier run's app left to skew this one's memory
    tmp = tempfile.mkdtemp(prefix="bs-bench-ingest-")
    path = os.path.join(tmp, "app.log")
    Path(path).touch()
    app_proc = subprocess.Popen(["sleep", "3600"])
    server, port, token = start_sidecar(app_proc.pid, path)
    try:
        client = Client(Target(f"127.0.0.1:{port}", token))
        client.wait_ready(10)
        res = asyncio.run(run(client, path, seconds, fmt))
        client.close()
        return res
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


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="8 s of ingest")
    ap.add_argument("--seconds", type=float, default=0)
    ap.add_argument(
        "--format",
        choices=("text", "json", "both"),
        default="both",
        help="lines written: plain text, JSON objects (shown as message + key=value), or both",
    )
    args = ap.parse_args(argv)
    seconds = args.seconds or (8.0 if args.quick else 30.0)
    for fmt in ("text", "json") if args.format == "both" else (args.format,):
        res = measure(fmt, seconds)
        print(
            f"key press latencies under ingest, {fmt} (ms):",
            [round(x) for x in res.busy],
            file=sys.stderr,
        )
        lost = "" if res.last_shown else "; LAST LINE NOT SHOWN"
        print(
            f"tui_keypress_p99 at 10k {fmt} lines/s ({len(res.busy)} presses, {res.written} lines"
            f"{lost}): {p99(res.busy):.0f} ms (median {statistics.median(res.busy):.0f}) | anchor: "
            f"idle p99 {p99(res.idle):.0f} ms | ratio: {p99(res.busy) / 100:.2f} of the goal "
            f"(goal: <= 100 ms)"
        )
        growth = res.rss_end / res.rss_cap
        print(
            f"tui_memory at the {LINE_CAP}-line cap, {fmt}: {res.rss_end:.0f} MiB at the end | "
            f"anchor: {res.rss_cap:.0f} MiB a third of the way in | ratio: {growth:.2f} "
            f"(goal: flat, <= 1.10; lines kept {res.lines})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
