"""The recorder's ring, the client-side merge order, and the home screen's line format."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent._ring import Ring
from tui.merge import Merger, merge_key
from tui.widgets.log_format import Row, clock, lines_of, parse_jump


def test_ring_evicts_and_counts_lost() -> None:
    """A full ring drops the oldest; a reader behind it learns exactly how many it missed."""
    r: Ring[int] = Ring(3)
    for _ in range(5):
        r.append(lambda seq: seq)
    assert (r.first_seq, r.next_seq, len(r)) == (3, 6, 3)
    assert r.after(0) == ([3, 4, 5], 2)
    assert r.after(3) == ([4, 5], 0)
    assert r.after(5) == ([], 0)
    assert r.after(0, limit=1) == ([3], 2)
    assert r.last(2) == [4, 5]


def test_ring_wait_wakes_on_append() -> None:
    """wait() returns as soon as an item after the given seq exists."""
    r: Ring[int] = Ring(10)
    threading.Timer(0.05, lambda: r.append(lambda s: s)).start()
    t = time.monotonic()
    assert r.wait(0, timeout=5)
    assert time.monotonic() - t < 2
    assert not r.wait(1, timeout=0.05)


@dataclass
class R:
    time_ns: int
    source_id: str
    seq: int


@given(st.lists(st.tuples(st.integers(0, 5), st.sampled_from("abc")), max_size=60))
def test_merge_is_time_then_source_then_seq(items: list[tuple[int, str]]) -> None:
    """Whatever the arrival order, released records are sorted by (time, source, seq), and a
    source's own records keep their order."""
    seqs: dict[str, int] = {}
    recs = []
    for t, s in items:
        seqs[s] = seqs.get(s, -1) + 1
        recs.append(R(t, s, seqs[s]))
    m = Merger(window_s=10)
    m.push(recs, now_ns=0)
    assert m.pop_ready(now_ns=1) == []  # still inside the window
    out = m.pop_ready(now_ns=0, flush=True)
    assert [merge_key(r) for r in out] == sorted(merge_key(r) for r in recs)
    assert len(m) == 0


def test_merge_window_and_bound() -> None:
    """Records are held for the window, then released; beyond max_held the oldest go early."""
    m = Merger(window_s=1.0, max_held=2)
    m.push([R(2, "a", 0)], now_ns=0)
    m.push([R(1, "b", 0)], now_ns=int(0.5e9))
    assert m.pop_ready(now_ns=int(0.9e9)) == []
    assert [r.time_ns for r in m.pop_ready(now_ns=int(1.6e9))] == [1, 2]
    m.push([R(5, "a", 1), R(6, "a", 2), R(7, "a", 3)], now_ns=0)
    assert [r.time_ns for r in m.pop_ready(now_ns=0)] == [5]


def test_line_format_and_pretty_json() -> None:
    """A row is one fixed-column line; pretty mode expands JSON; bookmarks show in the gutter."""
    row = Row(1704067200_123_000_000, "s", 5, '{"a":1,"b":"x"}', 0, 0)
    (line,) = lines_of(row, "app.log", pretty=False)
    assert line == ' 00:00:00.123 ERROR app.log        {"a":1,"b":"x"}'
    pretty = lines_of(row, "app.log", pretty=True)
    assert len(pretty) == 4 and pretty[1].strip() == '"a": 1,'
    row.bookmarked = True
    assert lines_of(row, "app.log", pretty=False)[0].startswith("●")
    assert clock(0) == "00:00:00.000"


def test_parse_jump() -> None:
    """Clock times use the latest line's day (UTC); relative and ISO times work; junk is refused."""
    day = 1704067200_000_000_000 + 5 * 3600 * 10**9
    assert parse_jump("01:02", day) == 1704067200_000_000_000 + 3720 * 10**9
    assert parse_jump("01:02:03.5", day) == 1704067200_000_000_000 + int(3723.5 * 1e9)
    assert parse_jump("-5m", 0, now=1000.0) == 700 * 10**9
    assert parse_jump("2024-01-01T00:00:01Z", 0) == 1704067201 * 10**9
    with pytest.raises(ValueError, match="cannot read"):
        parse_jump("soon", 0)
