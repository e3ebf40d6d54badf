"""Results about logs: sources and records.

A record is a ``NamedTuple`` rather than a dataclass on purpose: the follow
path builds hundreds of thousands per second and tuple construction is the
cheapest immutable object Python has (measured ~3x cheaper than a frozen
slots dataclass). Everything else here is a frozen dataclass.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import NamedTuple

from agent.results.pod import Unavailable


class Level(enum.IntEnum):
    """Normalised severity; the values match ``borescope.v1.Level``."""

    UNSPECIFIED = 0
    TRACE = 1
    DEBUG = 2
    INFO = 3
    WARN = 4
    ERROR = 5
    FATAL = 6


class RecordKind(enum.IntEnum):
    """What a record is; the values match ``borescope.v1.RecordKind``."""

    LINE = 0
    GAP = 1
    EVENT = 2
    NOTICE = 3


class SourceKind(enum.IntEnum):
    """Where a source was found; the values match ``borescope.v1.SourceKind``."""

    UNSPECIFIED = 0
    OPEN_FILE = 1
    LOG_DIR = 2
    STDIO = 3
    CONFIG = 4
    RECORDER = 5


class SourceFormat(enum.IntEnum):
    """How a source's lines are framed; the values match ``borescope.v1.SourceFormat``."""

    AUTO = 0
    CRI = 1
    JSON = 2
    LOGFMT = 3
    TEXT = 4


@dataclass(frozen=True, slots=True)
class Source:
    """A log source.

    Attributes:
        id: stable across sidecar restarts: derived from the container's name and the path.
        root: the root the path is resolved in, as the sidecar sees it ("/proc/PID/root" or "/").
        path: the path inside ``root``.
        pids: processes holding the file open for writing (OPEN_FILE).
        mtime: epoch seconds (0 when unknown).
    """

    id: str
    kind: SourceKind
    path: str
    root: str
    container_id: str = ""
    pids: tuple[int, ...] = ()
    size: int = 0
    mtime: float = 0.0
    format: SourceFormat = SourceFormat.AUTO
    description: str = ""


class Record(NamedTuple):
    """One log line (or gap, notice, event) with its parsed parts.

    Attributes:
        time: epoch seconds; the receive time when ``time_is_receive``.
        fields: parsed fields (JSON keys, logfmt pairs); None in basic detail.
        raw: the line as text (invalid UTF-8 replaced), ending with the
            truncation marker when ``truncated``.
        offset: byte offset of the line in its file; the sequence for the recorder.
        seq: per-source sequence within one stream (the merge tie-break).
        lost: bytes (or records) lost, for GAP records (0 = unknown).
    """

    time: float
    time_is_receive: bool
    source_id: str
    level: int
    message: str
    fields: dict[str, str] | None
    raw: str
    truncated: bool
    kind: int
    stream: str
    offset: int
    seq: int
    lost: int = 0


class RawChunk(NamedTuple):
    """A run of whole lines of one file source, as written (DETAIL_RAW).

    Attributes:
        offset: byte offset of ``data[0]`` in its file.
        data: whole lines, each ending with a newline; not decoded.
        lines: how many lines ``data`` holds.
        seq: the first line's per-source sequence (line i has ``seq + i``).
        time: when the bytes were read (epoch seconds): a receive time.
    """

    source_id: str
    offset: int
    data: bytes
    lines: int
    seq: int
    time: float


@dataclass(frozen=True, slots=True)
class LogBatch:
    """Records ready for one stream message, and the cursors after them.

    Attributes:
        cursors: source id -> cursor after its last consumed line (filtered
            lines included, so a resume never re-reads them).
        live: history is exhausted; what follows is live.
        chunks: runs of whole lines (raw mode); with ``records`` ordered by
            ``seq`` within a source.
    """

    records: tuple[Record, ...]
    cursors: dict[str, str]
    sources_added: tuple[Source, ...] = ()
    sources_removed: tuple[str, ...] = ()
    live: bool = False
    chunks: tuple[RawChunk, ...] = ()


@dataclass(frozen=True, slots=True)
class SourceList:
    """Discovered sources and what could not be looked at."""

    sources: tuple[Source, ...]
    unavailable: tuple[Unavailable, ...] = field(default=())
