"""The recorder as a log source and as an event stream: cursors over its ring.

An event cursor is ``r1.<seq>``: "after event number seq". A cursor older
than the ring's oldest event cannot be served: CursorLost with the earliest
cursor, or (when asked) a gap that says how many events were evicted.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from agent._follow import Start
from agent._sources import RECORDER_SOURCE_ID
from agent.errors import CursorLost, InvalidArgument
from agent.results.events import Event, EventKind, Severity
from agent.results.logs import Level, Record, RecordKind

if TYPE_CHECKING:
    from agent._logs import ReaderOptions
    from agent._ring import Ring

CURSOR_PREFIX = "r1."
_LEVEL = {Severity.INFO: Level.INFO, Severity.WARNING: Level.WARN, Severity.CRITICAL: Level.ERROR}


def event_cursor(seq: int) -> str:
    """The cursor after event ``seq``."""
    return f"{CURSOR_PREFIX}{seq}"


def parse_event_cursor(text: str) -> int:
    """The sequence number in an event cursor.

    Raises:
        InvalidArgument: not an event cursor.
    """
    if not text.startswith(CURSOR_PREFIX) or not text[len(CURSOR_PREFIX) :].isdigit():
        raise InvalidArgument(f"not an event cursor: {text[:80]!r}")
    return int(text[len(CURSOR_PREFIX) :])


def resume_point(ring: Ring[Event], cursor: str | None, gap_on_lost: bool) -> tuple[int, int]:
    """(seq to read after, events lost) for a cursor; (-1, 0) when there is none.

    Raises:
        CursorLost: the events after the cursor were evicted (and not ``gap_on_lost``).
        InvalidArgument: a malformed cursor.
    """
    if not cursor:
        return -1, 0
    seq = parse_event_cursor(cursor)
    first = ring.first_seq
    if seq > ring.next_seq - 1:
        raise InvalidArgument(
            f"event cursor {cursor} is ahead of the recorder (did the sidecar restart?)"
        )
    lost = max(0, first - 1 - seq)
    if lost and not gap_on_lost:
        raise CursorLost(
            f"{lost} events after {cursor} were evicted from the recorder's ring "
            "(config recorder_ring_size); resume from the earliest cursor or ask for a gap",
            event_cursor(first - 1),
        )
    return max(seq, first - 1), lost


def event_record(ev: Event, seq: int) -> Record:
    """An event rendered as a log record (kind EVENT) for the merged stream."""
    fields = {"kind": EventKind(ev.kind).name.lower(), **ev.attrs}
    if ev.process is not None:
        fields["pid"] = str(ev.process.pid)
    if ev.exit_code is not None:
        fields["exit_code"] = str(ev.exit_code)
    return Record(
        ev.time,
        False,
        RECORDER_SOURCE_ID,
        int(_LEVEL.get(ev.severity, Level.INFO)),
        ev.message,
        fields,
        ev.message,
        False,
        RecordKind.EVENT,
        "",
        ev.seq,
        seq,
    )


class RecorderReader:
    """The recorder's ring as a reader of a :class:`~agent._logs_stream.LogStream`."""

    id = RECORDER_SOURCE_ID

    def __init__(self, ring: Ring[Event], cursor: str | None, opts: ReaderOptions) -> None:
        self.ring = ring
        self.keep: Callable[[Record], bool] | None = opts.keep
        after, lost = resume_point(ring, cursor, opts.gap_on_lost)
        if after < 0:
            if opts.start is Start.BEGINNING:
                after = ring.first_seq - 1
            else:
                after = max(ring.first_seq - 1, ring.next_seq - 1 - opts.tail_lines)
        self._after = after
        self._pending_gap = lost
        self.seq = 0
        self.at_eof = False
        self.idle = False

    @property
    def cursor(self) -> str:
        """After the last event taken."""
        return event_cursor(self._after)

    def take(self, n: int, out: list[Record]) -> int:
        """Append up to ``n`` records for events after the cursor."""
        taken = 0
        if self._pending_gap:
            msg = f"{self._pending_gap} recorder events were evicted before they could be delivered"
            out.append(
                Record(
                    time.time(),
                    True,
                    self.id,
                    0,
                    msg,
                    None,
                    msg,
                    False,
                    RecordKind.GAP,
                    "",
                    0,
                    self.seq,
                    self._pending_gap,
                )
            )
            self.seq += 1
            self._pending_gap = 0
            taken += 1
        events, lost = self.ring.after(self._after, n)
        if lost:  # evicted while we were away: say so, then carry on from the oldest kept
            self._pending_gap = lost
        self.idle = not events
        self.at_eof = len(events) < n
        for ev in events:
            self._after = ev.seq
            rec = event_record(ev, self.seq)
            if self.keep is not None and not self.keep(rec):
                continue
            self.seq += 1
            out.append(rec)
            taken += 1
        return taken

    def close(self) -> None:
        """Nothing to release (the ring belongs to the recorder)."""
