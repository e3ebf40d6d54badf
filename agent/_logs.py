"""Follow many log sources as one stream of record batches, exactly once.

Each file source is a :class:`FileReader`: a byte :class:`~agent._follow.Follower`
cut into lines, parsed, filtered, with a cursor after every consumed line
(filtered-out lines advance it too, so a resume never re-reads them). A
:class:`~agent._logs_stream.LogStream` polls every reader in turn and builds
batches of at most ``max_batch`` records. Nothing is read ahead beyond one follower read per
source: the file is the buffer.

In raw mode (DETAIL_RAW, no filter, not CRI) a reader hands out
:class:`RawChunk` runs of whole lines instead of a record per line; lines
longer than the cap, gaps and notices stay records. ``seq`` numbers records
and chunk lines of one source alike, and counts (``take``, batch sizes,
limits) are in lines either way.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from agent._follow import Follower, Piece, PieceKind, Start
from agent._logparse import CriJoiner
from agent._logs_parse import LineParser
from agent._logs_raw import segments, split_chunk
from agent.errors import CursorLost, InvalidArgument
from agent.results.logs import RawChunk, Record, RecordKind, Source, SourceFormat

READ_BYTES = 256 << 10  # per source per poll: bounds memory and keeps sources fair
MAX_HELD = 10_000  # CRI records held while a partial line is open
RAW_BATCH_BYTES = 1 << 20  # raw mode: a batch stops growing past this many bytes of chunks

Item = Record | RawChunk


@dataclass(frozen=True, slots=True)
class LogFilter:
    """Server-side filters. ``regex`` is searched in the raw line."""

    regex: str = ""
    invert: bool = False
    min_level: int = 0
    since: float = 0.0
    until: float = 0.0
    source_ids: tuple[str, ...] = ()

    def compiled(self) -> Callable[[Record], bool] | None:
        """A predicate, or None when nothing is filtered.

        Raises:
            InvalidArgument: the regex does not compile.
        """
        try:
            rx = re.compile(self.regex) if self.regex else None
        except re.error as e:
            raise InvalidArgument(f"filter regex {self.regex!r} does not compile: {e}") from None
        if rx is None and not self.min_level and not self.since and not self.until:
            return None
        search, invert, lv = (rx.search if rx else None), self.invert, self.min_level
        since, until = self.since, self.until

        def keep(r: Record) -> bool:
            if lv and r.level < lv:
                return False
            if since and r.time < since:
                return False
            if until and r.time >= until:
                return False
            return search is None or (search(r.raw) is None) == invert

        return keep


class FileReader:
    """One file source: lines, records and cursors.

    Args:
        source: what to follow.
        cursor: resume after this cursor.
        start: BEGINNING or END (with ``tail_lines``) when there is no cursor.
        keep: filter predicate (None = keep everything).
        cap: line cap in bytes.
        full: parse field maps (DETAIL_FULL).
        raw: hand out runs of whole lines as :class:`RawChunk` (honoured only
            without a filter and for non-CRI sources).
    """

    def __init__(
        self,
        source: Source,
        *,
        cursor: str | None,
        start: Start,
        tail_lines: int,
        gap_on_lost: bool,
        keep: Callable[[Record], bool] | None,
        cap: int,
        full: bool,
        raw: bool = False,
    ) -> None:
        self.source = source
        self.id = source.id
        self.keep = keep
        self.cap = max(64, cap)
        self.full = full
        self.cri = CriJoiner(self.cap) if source.format is SourceFormat.CRI else None
        self.parser = LineParser(source.id, self.cap, full)
        self.raw = raw and keep is None and self.cri is None
        self.follower = Follower(
            source.root,
            source.path,
            cursor=cursor,
            start=start,
            tail_lines=tail_lines,
            gap_on_lost=gap_on_lost,
            max_read=READ_BYTES,
        )
        # Ready records (and raw chunks) with the (piece, end offset) that makes their cursor.
        self._ready: list[tuple[Item, Piece | None, int]] = []
        self._ri = 0  # records before this index in _ready were taken
        self._held: list[tuple[Record, Piece | None, int]] = []
        self._partial = bytearray()
        self._dropped = 0  # bytes of the current line beyond the cap
        self._line_start = self.follower.position[2]
        self._ident = self.follower.position[:2]
        self._cursor = self.follower.cursor  # after the last consumed line
        self._last_piece: Piece | None = None
        self._consumed: tuple[Piece, int] | None = None  # end of the last line processed
        self.seq = 0
        self.at_eof = False
        self.idle = False  # the last read found nothing new

    @property
    def cursor(self) -> str:
        """The cursor after the last record handed out (and any filtered lines after it)."""
        return self._cursor

    def take(self, n: int, out: list[Item]) -> int:
        """Append up to ``n`` ready lines to ``out`` (reading more if none are ready).

        Returns how many lines (records, or lines in chunks) were appended.
        """
        if self._ri >= len(self._ready):
            self._ready.clear()
            self._ri = 0
            self._fill()
        if self.raw:
            return self._take_raw(n, out)
        ready = self._ready
        chunk = ready[self._ri : self._ri + n]
        self._ri += len(chunk)
        out.extend([entry[0] for entry in chunk])
        mark: tuple[Piece, int] | None = None
        for entry in reversed(chunk):  # the last record that came from the file
            if entry[1] is not None:
                mark = (entry[1], entry[2])
                break
        self._advance(mark)
        return len(chunk)

    def _take_raw(self, n: int, out: list[Item]) -> int:
        """``take`` in raw mode: entries are few (a chunk per read), so a plain loop."""
        ready = self._ready
        taken = 0
        i = self._ri
        mark: tuple[Piece, int] | None = None
        while i < len(ready) and taken < n:
            entry = ready[i]
            item = entry[0]
            if type(item) is RawChunk:
                piece = entry[1]
                if item.lines > n - taken and piece is not None:  # split at a line boundary
                    head, ready[i] = split_chunk((item, piece, entry[2]), n - taken)
                    out.append(head[0])
                    taken = n
                    mark = (head[1], head[2])
                    break
                taken += item.lines
            else:
                taken += 1
            out.append(item)
            if entry[1] is not None:
                mark = (entry[1], entry[2])
            i += 1
        self._ri = i
        self._advance(mark)
        return taken

    def _advance(self, mark: tuple[Piece, int] | None) -> None:
        """Move the cursor after what was just taken."""
        if self._ri >= len(self._ready) and not self._held:
            # Everything read so far is delivered or filtered out: the cursor may
            # move past filtered lines too (never past an open partial line).
            mark = self._consumed or mark
        if mark is not None:
            self._cursor = mark[0].cursor_at(mark[1] - mark[0].offset)

    def _fill(self) -> None:
        pieces = self.follower.read()
        self.parser.now = time.time()
        self.idle = not pieces
        if not pieces:
            self.at_eof = True
            return
        for p in pieces:
            if p.kind is PieceKind.DATA:
                if (p.dev, p.ino) != self._ident:
                    # A new file from its start ends any partial line of the old one;
                    # a rotated copy read from the same offset continues it.
                    if p.offset == 0:
                        self._flush_partial()
                        self._line_start = 0
                    self._ident = (p.dev, p.ino)
                if self.raw:
                    self._raw_lines(p)
                else:
                    self._lines(p)
                self._last_piece = p
            else:
                if p.kind is PieceKind.GAP or ((p.dev, p.ino) != self._ident and p.offset == 0):
                    # A gap, or moving on to the next file: an unterminated last line of
                    # the old one comes out before the notice, not after it.
                    self._flush_partial()
                self._notice(p)

    def _notice(self, p: Piece) -> None:
        kind = RecordKind.GAP if p.kind is PieceKind.GAP else RecordKind.NOTICE
        rec = Record(
            time.time(),
            True,
            self.id,
            0,
            p.reason,
            None,
            p.reason,
            False,
            kind,
            "",
            p.offset,
            self.seq,
            p.lost,
        )
        self.seq += 1
        self._ready.append((rec, None, 0))

    def _flush_partial(self) -> None:
        """A line without its newline at the end of a rotated file: deliver it as it is."""
        if self._partial or self._dropped:
            piece = self._last_piece
            if self.raw and not self._dropped and piece is not None:
                self._chunk(bytes(self._partial) + b"\n", 1, piece, piece.end)
            else:
                self._emit(bytes(self._partial), self._dropped, piece, piece.end if piece else 0)
        self._partial.clear()
        self._dropped = 0

    def _lines(self, p: Piece) -> None:
        """Cut a run of bytes into lines; the last, unfinished one waits in ``_partial``."""
        data = p.data
        pos = 0
        find = data.find
        cap = self.cap
        fast = self.cri is None
        while True:
            if fast and not self._partial and not self._dropped:
                # No line is open: the rest of the piece can take the ASCII fast path.
                rest = data[pos:] if pos else data
                if rest.isascii():
                    pos += self._ascii_lines(p, pos)
                fast = False  # one try per piece: a non-ASCII piece goes line by line
            nl = find(b"\n", pos)
            if nl < 0:
                break
            if self._partial or self._dropped:
                room = cap - len(self._partial)
                seg = data[pos:nl]
                if room > 0:
                    self._partial += seg[:room]
                self._dropped += max(0, len(seg) - max(room, 0))
                line = bytes(self._partial)
                dropped = self._dropped
                self._partial.clear()
                self._dropped = 0
            else:
                line = data[pos:nl]
                dropped = 0
            self._emit(line, dropped, p, p.offset + nl + 1)
            pos = nl + 1
        if pos < len(data):
            self._hold_partial(data[pos:])

    def _hold_partial(self, seg: bytes) -> None:
        """Keep the start of an unfinished line (up to the cap; the rest is counted)."""
        room = self.cap - len(self._partial)
        if room > 0:
            self._partial += seg[:room]
        self._dropped += max(0, len(seg) - max(room, 0))

    def _raw_lines(self, p: Piece) -> None:
        """Raw mode: runs of short lines become chunks, long lines records; no per-line loop."""
        data = p.data
        pos = 0
        glue = b""
        if self._partial or self._dropped:
            nl = data.find(b"\n")
            if nl < 0:
                self._hold_partial(data)
                return
            if self._dropped or len(self._partial) + nl > self.cap:
                self._hold_partial(data[:nl])
                line, dropped = bytes(self._partial), self._dropped
                self._partial.clear()
                self._dropped = 0
                self._emit(line, dropped, p, p.offset + nl + 1)
            else:
                glue = bytes(self._partial)  # the first line began in an earlier read
                self._partial.clear()
            pos = nl + 1
        segs, rest = segments(data, pos, self.cap)
        if glue:
            if segs and not segs[0][2]:
                segs[0] = (0, segs[0][1], False)
            else:
                segs.insert(0, (0, pos, False))
        for start, end, long in segs:
            if long:
                self._emit(data[start : end - 1], 0, p, p.offset + end)
                continue
            lines = data.count(b"\n", start, end)
            body = data[start:end]
            self._chunk(glue + body if start == 0 and glue else body, lines, p, p.offset + end)
        if rest < len(data):
            self._hold_partial(data[rest:])

    def _chunk(self, data: bytes, lines: int, piece: Piece, end: int) -> None:
        """Ready a run of whole lines; the cursor after it comes from ``piece``."""
        start = self._line_start
        self._line_start = end
        self._ready.append(
            (RawChunk(self.id, start, data, lines, self.seq, self.parser.now), piece, end)
        )
        self.seq += lines
        self._consumed = (piece, end)

    def _ascii_lines(self, p: Piece, pos: int) -> int:
        """Fast path for ASCII text from ``pos``: decode once, split once, parse each line.

        Byte and character offsets agree in ASCII, so offsets and cursors stay
        exact. Returns how many bytes it consumed (up to the last newline).
        """
        data = p.data
        last = data.rfind(b"\n", pos)
        if last < 0:
            return 0
        off = p.offset + pos
        cap = self.cap
        parse_text = self.parser.parse_text
        parse = self.parser.parse
        keep = self.keep
        append = self._ready.append
        seq = self.seq
        end = off
        for text in data[pos:last].decode("ascii").split("\n"):
            end = off + len(text) + 1
            rec = parse_text(text, off, seq) if len(text) <= cap else None
            if rec is None:
                rec = parse(text.encode(), off, seq)
            if keep is None or keep(rec):
                append((rec, p, end))
                seq += 1
            off = end
        self.seq = seq
        self._line_start = end
        self._consumed = (p, end)
        return last + 1 - pos

    def _emit(self, line: bytes, dropped: int, piece: Piece | None, end: int) -> None:
        start = self._line_start
        self._line_start = end
        stream = ""
        hint = None
        if self.cri is not None:
            joined = self.cri.feed(line)
            if joined is None:
                return  # a partial (P) entry: the cursor stays before it until its F arrives
            line, stream, hint, more = joined
            dropped += more
        rec = self.parser.parse(line, start, self.seq, dropped, stream, hint)
        keep = self.keep
        if keep is not None and not keep(rec):
            if piece is not None and not (self.cri is not None and self.cri.pending):
                self._consumed = (piece, end)
            return
        self.seq += 1
        if piece is not None and not (self.cri is not None and self.cri.pending):
            self._consumed = (piece, end)
        if self.cri is not None and (self.cri.pending or self._held):
            # Another stream's partial line is open: a cursor here would skip it on
            # resume, so hold finished records until no partial line is open.
            self._held.append((rec, piece, end))
            if self.cri.pending and len(self._held) < MAX_HELD:
                return
            self._ready.extend(self._held)
            self._held.clear()
            return
        self._ready.append((rec, piece, end))

    def close(self) -> None:
        """Release the follower."""
        self.follower.close()


@dataclass(frozen=True, slots=True)
class ReaderOptions:
    """How every reader of one stream starts and what it keeps."""

    start: Start = Start.END
    tail_lines: int = 0
    gap_on_lost: bool = False
    keep: Callable[[Record], bool] | None = None
    cap: int = 16384
    full: bool = True
    raw: bool = False


def open_readers(
    sources: Iterable[Source], cursors: dict[str, str], opts: ReaderOptions
) -> list[FileReader]:
    """One reader per file source; lost cursors are collected and raised together.

    Raises:
        CursorLost: some cursors cannot be served (``earliest`` is a JSON
            object: source id -> earliest cursor), unless ``opts.gap_on_lost``.
    """
    readers: list[FileReader] = []
    lost: dict[str, str] = {}
    messages: list[str] = []
    try:
        for s in sources:
            try:
                readers.append(
                    FileReader(
                        s,
                        cursor=cursors.get(s.id),
                        start=opts.start,
                        tail_lines=opts.tail_lines,
                        gap_on_lost=opts.gap_on_lost,
                        keep=opts.keep,
                        cap=opts.cap,
                        full=opts.full,
                        raw=opts.raw,
                    )
                )
            except CursorLost as e:
                lost[s.id] = e.earliest
                messages.append(str(e))
    except BaseException:
        for r in readers:
            r.close()
        raise
    if lost:
        for r in readers:
            r.close()
        raise CursorLost("; ".join(messages), json.dumps(lost, sort_keys=True))
    return readers
