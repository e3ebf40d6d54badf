"""The home screen, driven with a Pilot against a real sidecar following real files."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sidecar.config import Config
from tests.conftest import Running, start_sidecar
from tests.tui.conftest import screen_text
from tests.tui.test_app import notes, wait_for
from tui.app import make_app
from tui.screens.logs import LINE_CAP, LogsScreen

SIZE = (140, 40)


@pytest.fixture
def logs_env(tmp_path: Path) -> Iterator[tuple[Running, Path, Path]]:
    app = subprocess.Popen(["sleep", "300"])
    a = tmp_path / "app.log"
    b = tmp_path / "worker.log"
    lines_a = []
    for i in range(40):
        level = "error" if i in (10, 30) else "info"
        lines_a.append(
            json.dumps(
                {"time": f"2024-01-01T00:00:{i:02d}Z", "level": level, "msg": f"request {i}"}
            )
        )
    a.write_text("\n".join(lines_a) + "\n")
    b.write_text(
        "".join(f"2024-01-01T00:00:{i:02d}.500Z INFO worker tick {i}\n" for i in range(40))
    )
    r = start_sidecar(
        Config(local_root=app.pid, log_sources=(str(a), str(b)), recorder_interval_s=0.5)
    )
    yield r, a, b
    r.client.close()
    r.sidecar.stop(0)
    app.kill()
    app.wait()


async def home(app: Any, pilot: Any, lines: int) -> LogsScreen:
    await wait_for(pilot, lambda: isinstance(app.screen, LogsScreen))
    screen = app.screen
    assert isinstance(screen, LogsScreen)
    await wait_for(
        pilot, lambda: len([r for r in screen.line_rows if r.kind == 0]) >= lines, timeout=10
    )
    return screen


def texts(screen: LogsScreen) -> list[str]:
    return [r.text for r in screen.line_rows if r.kind == 0]


async def test_merged_by_time_with_sources_and_follow(logs_env: tuple[Running, Path, Path]) -> None:
    """Both files arrive merged by timestamp (ties broken by source, then file order), each
    source has its own colour, events from the recorder are in the same stream, and lines
    appended later show up while following."""
    r, a, _ = logs_env
    app = make_app(r.client)
    async with app.run_test(size=SIZE) as pilot:
        screen = await home(app, pilot, 80)
        rows = [x for x in screen.line_rows if x.kind == 0]
        times = [x.time_ns for x in rows]
        assert times == sorted(times)
        assert "request 0" in rows[0].text and "worker tick 0" in rows[1].text
        assert len(screen.view.line_highlighter.sources) >= 2
        await wait_for(
            pilot, lambda: any(x.source_id == "recorder" for x in screen.line_rows), timeout=10
        )
        with a.open("a") as f:
            f.write('{"time":"2024-01-01T00:01:00Z","level":"warn","msg":"late line"}\n')
        await wait_for(pilot, lambda: any("late line" in t for t in texts(screen)), timeout=5)
        await pilot.pause()
        assert "late line" in screen_text(app)
        assert not [n for n in notes(app) if "rror" in n]


async def test_pause_badge_search_and_filter(logs_env: tuple[Running, Path, Path]) -> None:
    """Space pauses: new lines are counted in a badge, not shown, until space again.
    Search highlights and n moves between matches without hiding lines; a filter hides them."""
    r, a, _ = logs_env
    app = make_app(r.client)
    async with app.run_test(size=SIZE) as pilot:
        screen = await home(app, pilot, 80)
        await pilot.press("space")
        assert not screen.following
        with a.open("a") as f:
            for i in range(5):
                f.write(f'{{"time":"2024-01-01T00:02:0{i}Z","level":"info","msg":"paused {i}"}}\n')
        # (the recorder's events also count: other processes on this machine open ports)
        await wait_for(pilot, lambda: any("paused 4" in x.text for x in screen._held), timeout=5)
        await pilot.pause()
        assert screen.new_while_paused >= 5
        assert f"paused — {screen.new_while_paused} new lines" in screen_text(app)
        assert not any("paused 0" in t for t in texts(screen))
        await pilot.press("space")
        assert any("paused 4" in t for t in texts(screen))
        before = len(texts(screen))
        screen.set_search("tick 2\\d")
        await pilot.pause()
        first = screen._pos
        assert first is not None and "worker tick 2" in screen.view.lines[first]
        await pilot.press("n")
        assert screen._pos is not None and screen._pos > first
        assert len(texts(screen)) == before  # search never hides lines
        screen.set_filter("worker")
        await pilot.pause()
        assert texts(screen) and all("worker" in t for t in texts(screen))
        await pilot.press("escape")
        await pilot.pause()
        assert len(texts(screen)) == before


async def test_levels_errors_bookmarks_time_and_json(logs_env: tuple[Running, Path, Path]) -> None:
    """'!' keeps errors only; e/E walk errors; m/u bookmark; jump_to_time lands on the first line
    at that time; j pretty-prints JSON lines over several screen lines."""
    r, _, _ = logs_env
    app = make_app(r.client)
    async with app.run_test(size=SIZE) as pilot:
        screen = await home(app, pilot, 80)
        await pilot.press("exclamation_mark")
        await pilot.pause()
        assert [t for t in texts(screen)] and all('"error"' in t for t in texts(screen))
        await pilot.press("a")
        await pilot.pause()
        screen._pos = 0
        await pilot.press("e")
        assert screen._pos is not None and "request 10" in screen.line_rows[screen._pos].text
        await pilot.press("e")
        assert "request 30" in screen.line_rows[screen._pos].text
        await pilot.press("E")
        assert "request 10" in screen.line_rows[screen._pos].text
        await pilot.press("m")
        assert screen.line_rows[screen._pos].bookmarked
        assert screen.view.lines[screen._pos].startswith("●")
        screen.jump_to_time("2024-01-01T00:00:20Z")
        assert "request 20" in screen.line_rows[screen._pos].text
        await pilot.press("u")
        assert "request 10" in screen.line_rows[screen._pos].text  # wrapped to the bookmark
        screen.jump_to_time("not a time")
        await pilot.pause()
        assert any("cannot read" in n for n in notes(app))
        n_lines = len(screen.line_rows)
        await pilot.press("j")
        await pilot.pause()
        assert len(screen.line_rows) > n_lines
        assert any(line.strip().startswith('"level"') for line in screen.view.lines)


async def test_memory_capped(logs_env: tuple[Running, Path, Path]) -> None:
    """More lines than the cap: the model and the view both stay at the cap."""
    r, a, _ = logs_env
    app = make_app(r.client)
    async with app.run_test(size=SIZE) as pilot:
        screen = await home(app, pilot, 80)
        with a.open("a") as f:
            f.write("".join(f"bulk {i}\n" for i in range(LINE_CAP + 500)))
        await wait_for(
            pilot,
            lambda: any(t == f"bulk {LINE_CAP + 499}" for t in texts(screen)[-5:]),
            timeout=30,
        )
        assert len(screen.rows) <= LINE_CAP
        assert len(screen.line_rows) <= LINE_CAP and screen.view.line_count <= LINE_CAP
        # The row behind each line stays aligned with the lines the Log pruned.
        assert len(screen.line_rows) == len(screen.view.lines)
        for line, row in zip(screen.view.lines[::997], screen.line_rows[::997], strict=True):
            assert line.endswith(row.body)


async def test_resumes_after_sidecar_restart_without_duplicates(tmp_path: Path) -> None:
    """The sidecar stops and comes back on the same address: the home screen keeps working,
    resumes from its cursors, and every line written meanwhile shows exactly once."""
    from sidecar.deps import Deps
    from sidecar.server import build
    from tests.conftest import new_token
    from tui.client import Client, Target
    from tui.connection import CHANNEL_OPTIONS

    app_proc = subprocess.Popen(["sleep", "300"])
    log = tmp_path / "app.log"
    log.write_text("".join(f"2024-01-01T00:00:00Z INFO before {i}\n" for i in range(10)))
    token, digest = new_token()
    config = Config(local_root=app_proc.pid, log_sources=(str(log),), token_sha256=digest)
    first = start_sidecar(config, token=token)
    port = first.sidecar.port
    client = Client(Target(first.address, token), options=CHANNEL_OPTIONS)
    second = None
    app = make_app(client, ping_interval=0.2)
    try:
        async with app.run_test(size=SIZE) as pilot:
            screen = await home(app, pilot, 10)
            first.sidecar.stop(0)
            with log.open("a") as f:
                f.write("".join(f"2024-01-01T00:00:01Z INFO during {i}\n" for i in range(10)))
            second = build(f"127.0.0.1:{port}", config, Deps.from_config(config))
            second.start()
            with log.open("a") as f:
                f.write("".join(f"2024-01-01T00:00:02Z INFO after {i}\n" for i in range(10)))
            await wait_for(pilot, lambda: any("after 9" in t for t in texts(screen)), timeout=20)
            await pilot.pause(0.3)
            mine = [
                t.split(" INFO ")[1]
                for t in texts(screen)
                if " INFO " in t and t.startswith("2024")
            ]
            expected = [f"{w} {i}" for w in ("before", "during", "after") for i in range(10)]
            assert [m for m in mine if m in expected] == expected
    finally:
        first.client.close()
        client.close()
        if second is not None:
            second.stop(0)
        app_proc.kill()
        app_proc.wait()


@pytest.fixture
def json_env(tmp_path: Path) -> Iterator[tuple[Running, Path]]:
    """One JSON log with fields (an error among them, and a hostile value) and one text log."""
    app = subprocess.Popen(["sleep", "300"])
    a = tmp_path / "api.log"
    b = tmp_path / "worker.log"
    recs = [
        {
            "time": "2024-01-01T00:00:01Z",
            "level": "info",
            "msg": "request",
            "path": "/cart",
            "ms": 12,
        },
        {"time": "2024-01-01T00:00:02Z", "level": "warn", "msg": "slow query", "ms": 950},
        {
            "time": "2024-01-01T00:00:03Z",
            "level": "error",
            "msg": "db failed",
            "err": "timeout after 5s",
            "attempt": 3,
        },
        {"time": "2024-01-01T00:00:04Z", "level": "info", "msg": "evil", "v": "\x1b]52;c;aGk=\x07"},
    ]
    a.write_text("".join(json.dumps(r) + "\n" for r in recs))
    b.write_text("".join(f"2024-01-01T00:00:0{i}.500Z INFO worker tick {i}\n" for i in range(5)))
    r = start_sidecar(Config(local_root=app.pid, log_sources=(str(a), str(b))))
    yield r, a
    r.client.close()
    r.sidecar.stop(0)
    app.kill()
    app.wait()


def shown(screen: LogsScreen) -> list[str]:
    """The view's lines that belong to the two files (not the recorder's events)."""
    return [
        line
        for line, row in zip(screen.view.lines, screen.line_rows, strict=True)
        if row.source_id != "recorder"
    ]


async def test_json_records_read_as_message_and_fields(json_env: tuple[Running, Path]) -> None:
    """JSON lines read lnav-style (time, level, source, message, key=value) by default; filter,
    search, error jumps and bookmarks work on what is shown; j shows the whole JSON."""
    r, _ = json_env
    app = make_app(r.client)
    async with app.run_test(size=SIZE) as pilot:
        screen = await home(app, pilot, 9)
        await wait_for(
            pilot,
            lambda: (
                any(r.message == "evil" for r in screen.rows)
                and any(r.text.endswith("worker tick 4") for r in screen.rows)
            ),
        )
        lines = shown(screen)
        db = next(x for x in lines if "db failed" in x)
        assert db.split()[1:] == [
            "ERROR", "api.log", "db", "failed", 'err="timeout', 'after', '5s"', "attempt=3"
        ]  # fmt: skip
        assert not any('{"time"' in x for x in lines)  # never the raw JSON
        evil = next(x for x in lines if " evil " in x)
        assert 'v="\\u001b]52;c;aGk=\\u0007"' in evil and "\x1b" not in evil
        # The filter sees what is shown: a source name, a field.
        screen.set_filter("api\\.log")
        await pilot.pause()
        assert len(shown(screen)) == 4
        text = screen_text(app)  # (the host's own logs under /var/log are sources here too)
        assert "INFO  api.log        request path=/cart ms=12" in text
        assert "WARN  api.log        slow query ms=950" in text
        screen.set_filter("attempt=3")
        await pilot.pause()
        assert [x.split()[1] for x in shown(screen)] == ["ERROR"]
        screen.set_filter("worker\\.log")
        await pilot.pause()
        assert len(shown(screen)) == 5 and all("worker tick" in x for x in shown(screen))
        screen.set_filter("matches nothing at all")
        await pilot.pause()
        assert not screen.line_rows and screen.view.virtual_size.height == 0
        await pilot.press("escape")
        await pilot.pause()
        assert screen.view.virtual_size.height == len(screen.view.lines) == len(screen.line_rows)
        # Search goes to a field's value; e goes to the error; m marks it and the mark shows
        # in the gutter of the same lnav-style line.
        screen.set_search("ms=950")
        await pilot.pause()
        assert screen._pos is not None and "slow query ms=950" in screen.view.lines[screen._pos]
        await pilot.press("e")
        assert screen._pos is not None and screen.line_rows[screen._pos].message == "db failed"
        await pilot.press("m")
        marked = screen.view.lines[screen._pos]
        assert marked.startswith("●") and marked.endswith("db failed " + db.split("failed ")[1])
        # Pretty-print: the whole JSON object under the head line, every key; a filter then
        # also sees the raw JSON.
        await pilot.press("j")
        await pilot.pause()
        assert any(x.strip() == '"err": "timeout after 5s",' for x in screen.view.lines)
        assert any(x.strip() == '"time": "2024-01-01T00:00:03Z",' for x in screen.view.lines)
        screen.set_filter('"attempt": 3')
        await pilot.pause()
        assert {row.message for row in screen.line_rows} == {"db failed"}
        assert not [n for n in notes(app) if "rror" in n]
