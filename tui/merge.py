"""Merge records from many sources into one order: by time, with a stable tie-break.

Sources are followed independently and batches interleave them, so a record
can arrive after a later one from another source. The merger holds what
arrived for a short window and releases it in (time, source, seq) order;
``seq`` is per-source and increasing, so lines of one source with the same
timestamp keep their file order. Used by the CLI and the home screen; it
works on anything with ``time_ns``, ``source_id`` and ``seq``.
"""

from __future__ import annotations

from typing import Any, Protocol


class Mergeable(Protocol):
    """What the merger needs of a record."""

    time_ns: int
    source_id: str
    seq: int


def merge_key(r: Any) -> tuple[int, str, int]:
    """The merge order of a record: time, then source id, then per-source sequence."""
    return (r.time_ns, r.source_id, r.seq)


class Merger:
    """A bounded reordering window.

    Held records live in one list. Each release sorts it (Timsort is linear
    on the nearly sorted runs that batches are) and hands out the longest
    key-ordered prefix whose records have all been held for the window; a
    per-record heap measured ~4x slower at 10k lines/s.

    Args:
        window_s: how long a record is held for earlier ones to arrive (0 = sort
            each push and release at once).
        max_held: bound on held records; beyond it the oldest are released early.
    """

    def __init__(self, window_s: float = 0.25, max_held: int = 50_000) -> None:
        self.window_ns = int(window_s * 1e9)
        self.max_held = max_held
        self._held: list[tuple[tuple[int, str, int], int, Any]] = []

    def push(self, records: list[Any], now_ns: int) -> None:
        """Hold ``records`` (received at ``now_ns``)."""
        self._held.extend([((r.time_ns, r.source_id, r.seq), now_ns, r) for r in records])

    def pop_ready(self, now_ns: int, *, flush: bool = False) -> list[Any]:
        """Records whose window has passed (all of them when ``flush``), in merge order."""
        held = self._held
        if not held:
            return []
        held.sort(key=_first)
        if flush:
            self._held = []
            return [h[2] for h in held]
        limit = now_ns - self.window_ns
        excess = len(held) - self.max_held
        n = 0
        for i, h in enumerate(held):
            if h[1] > limit and i >= excess:
                break
            n = i + 1
        out = [h[2] for h in held[:n]]
        del held[:n]
        return out

    def __len__(self) -> int:
        return len(self._held)


def _first(h: tuple[tuple[int, str, int], int, Any]) -> tuple[int, str, int]:
    return h[0]
