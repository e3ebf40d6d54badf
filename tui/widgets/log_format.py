"""How the home screen shows a record: one fixed-column line (or several, pretty JSON).

The line is lnav-style: time, level, source, then the text. For a structured
record (a JSON object or logfmt line) the text is its message followed by its
other fields as ``key=value`` (``tui.widgets.log_fields``); the pretty-print
toggle shows the whole JSON object instead. Pure functions and a small row
type, so they are unit-tested without an app. Every target string goes
through ``sanitize`` before it reaches the screen.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from protos import logs_pb2
from tui.sanitize import sanitize
from tui.widgets.log_fields import structure

LEVEL_NAMES = {0: "", 1: "TRACE", 2: "DEBUG", 3: "INFO", 4: "WARN", 5: "ERROR", 6: "FATAL"}
LEVEL_STYLES = {
    "TRACE": "dim",
    "DEBUG": "blue",
    "INFO": "green",
    "WARN": "bold yellow",
    "ERROR": "bold red",
    "FATAL": "bold white on red",
    "EVENT": "bold magenta",
    "GAP": "bold white on dark_red",
    "NOTE": "cyan",
}
#: Source colours, handed out in order of appearance.
PALETTE = (
    "cyan",
    "magenta",
    "bright_blue",
    "yellow",
    "bright_green",
    "orange1",
    "orchid",
    "turquoise2",
    "gold1",
    "salmon1",
)
SOURCE_WIDTH = 14
GUTTER_MARK = "●"
ERROR = 5
TIME_W = 12  # HH:MM:SS.mmm
LEVEL_AT = 1 + TIME_W + 1  # after the gutter, the time and its receive-time mark
SOURCE_AT = LEVEL_AT + 6
TEXT_AT = SOURCE_AT + SOURCE_WIDTH + 1
_CLOCK = re.compile(r"^(\d{1,2}):(\d\d)(?::(\d\d)(?:\.(\d{1,6}))?)?$")
_AGO = re.compile(r"^-(\d+(?:\.\d+)?)(s|m|h)$")


@dataclass(slots=True)
class Row:
    """One record as the screen keeps it (bounded by the line cap)."""

    time_ns: int
    source_id: str
    level: int
    text: str
    kind: int
    seq: int
    receive_time: bool = False
    bookmarked: bool = False
    line: str = ""  # the formatted one-line form, cached (cleared when a bookmark changes)
    message: str = ""  # structured records: the message (``text`` is then the raw line)
    fields: str = ""  # structured records: the other fields, ``key=value ...``

    @property
    def body(self) -> str:
        """What the one-line form shows after the source: the message and fields, or the text."""
        if self.fields:
            return f"{self.message} {self.fields}" if self.message else self.fields
        return self.message or self.text

    @property
    def fields_at(self) -> int:
        """Where the fields start in the one-line form (0: it has none)."""
        if not self.fields:
            return 0
        return TEXT_AT + (len(self.message) + 1 if self.message else 0)

    @property
    def tag(self) -> str:
        """The level column: a level, EVENT, GAP or NOTE."""
        if self.kind == logs_pb2.RECORD_KIND_GAP:
            return "GAP"
        if self.kind == logs_pb2.RECORD_KIND_NOTICE:
            return "NOTE"
        if self.kind == logs_pb2.RECORD_KIND_EVENT:
            return "EVENT"
        return LEVEL_NAMES.get(self.level, "")

    @property
    def is_error(self) -> bool:
        """Worth a stop for e/E: error and fatal lines, gaps, and warning-or-worse events."""
        return self.level >= ERROR or self.kind == logs_pb2.RECORD_KIND_GAP


def row_of(r: logs_pb2.Record) -> Row:
    """The row for a record (the text sanitized once, here)."""
    text = r.raw or r.message
    if r.kind == logs_pb2.RECORD_KIND_GAP:
        text = f"data lost: {r.gap.reason or r.message}"
    # isprintable() is False for every character sanitize() escapes (controls, line
    # separators, bidi marks): the common clean line skips the regex.
    safe = text if text.isprintable() else sanitize(text).expandtabs()
    row = Row(r.time_ns, r.source_id, r.level, safe, r.kind, r.seq, r.time_is_receive)
    if r.kind == logs_pb2.RECORD_KIND_LINE and not r.truncated:
        parts = structure(safe)
        if parts is not None and (parts[0] or parts[1]):
            row.message, row.fields = parts
    return row


def short_name(source_id: str, path: str = "") -> str:
    """A short label for a source: the file name, "stdout" for CRI, "recorder", and
    "k8s:CONTAINER" for a container's output read through the Kubernetes API."""
    if source_id == "recorder":
        return "recorder"
    name = (path or source_id).rsplit("/", 1)[-1] or source_id
    if source_id.startswith("stdio:"):
        name = "stdout"
    elif source_id.startswith("kube:"):
        name = "k8s:" + name
    return sanitize(name)


_last_second: list[object] = [None, ""]


def clock(ns: int) -> str:
    """HH:MM:SS.mmm (UTC) of a record time."""
    seconds, rest = divmod(ns, 1_000_000_000)
    if _last_second[0] != seconds:  # lines come in bursts within one second: format it once
        _last_second[:] = [seconds, time.strftime("%H:%M:%S", time.gmtime(seconds))]
    return f"{_last_second[1]}.{rest // 1_000_000:03d}"


def lines_of(row: Row, source: str, pretty: bool) -> list[str]:
    """The screen lines of a row: one, or the pretty-printed JSON under it."""
    gutter = GUTTER_MARK if row.bookmarked else " "
    if not pretty and row.line and row.line[0] == gutter:
        return [row.line]
    t = clock(row.time_ns) + ("~" if row.receive_time else " ")
    head = f"{gutter}{t}{row.tag:<5} {source[:SOURCE_WIDTH]:<{SOURCE_WIDTH}} "
    text = row.text
    if pretty and text.startswith("{") and text.endswith("}"):
        try:
            obj = json.loads(text)
        except ValueError:
            obj = None
        if isinstance(obj, dict):
            body = json.dumps(obj, indent=2, ensure_ascii=False).splitlines()
            pad = " " * TEXT_AT
            return [head + body[0]] + [pad + sanitize(b) for b in body[1:]]
    row.line = head + row.body
    return [row.line]


def parse_jump(text: str, latest_ns: int, now: float | None = None) -> int:
    """Nanoseconds for "jump to time": HH:MM[:SS[.fff]] (UTC, the day of the latest line),
    an ISO time, or "-5m"/"-30s"/"-1h" back from now.

    Raises:
        ValueError: none of those (the message says what is accepted).
    """
    s = text.strip()
    now = time.time() if now is None else now
    m = _AGO.match(s)
    if m:
        return int((now - float(m.group(1)) * {"s": 1, "m": 60, "h": 3600}[m.group(2)]) * 1e9)
    m = _CLOCK.match(s)
    if m:
        day = datetime.fromtimestamp((latest_ns or now * 1e9) / 1e9, UTC).date()
        hh, mm = int(m.group(1)), int(m.group(2))
        ss = int(m.group(3) or 0)
        frac = int((m.group(4) or "0").ljust(6, "0"))
        dt = datetime(day.year, day.month, day.day, hh, mm, ss, frac, tzinfo=UTC)
        return int(dt.timestamp() * 1e9)
    try:
        dt = datetime.fromisoformat(s)
    except ValueError:
        raise ValueError(
            f"cannot read {text!r} as a time: try 14:05, 14:05:30, -5m or 2024-05-01T14:05:00Z"
        ) from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp() * 1e9)
