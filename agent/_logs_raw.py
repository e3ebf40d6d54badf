"""Raw mode (DETAIL_RAW): cut a run of bytes into chunks of whole lines without a per-line loop.

The hot path of a raw follow does a handful of C-level calls per read (a
``rfind`` per line cap's worth of bytes, one ``count``), whatever the number
of lines: it never makes a Python object per line. Lines longer than the cap
are singled out so the reader can deliver them as truncated records.
"""

from __future__ import annotations

from agent._follow import Piece
from agent.results.logs import RawChunk

#: A segment of a piece's data: (start, end, long). ``end`` is just after a newline.
Segment = tuple[int, int, bool]


def short_run_end(data: bytes, start: int, stop: int, cap: int) -> int:
    """The end of the longest run of lines from ``start`` each at most ``cap`` bytes.

    ``data[start:stop]`` must be whole lines (``data[stop - 1]`` is a newline).
    Returns ``stop`` when every line is short, else the start of the first long
    line. The scan jumps a cap at a time: the last newline in the next
    ``cap + 1`` bytes ends a run of short lines, and no newline there means the
    line starting here is long.
    """
    p = start
    rfind = data.rfind
    while stop - p > cap:
        q = rfind(b"\n", p, p + cap + 1)
        if q < 0:
            return p
        p = q + 1
    return stop


def segments(data: bytes, pos: int, cap: int) -> tuple[list[Segment], int]:
    """Cut the whole lines of ``data[pos:]`` into runs of short lines and single long lines.

    Returns the segments in order and the offset where the unfinished last
    line (if any) starts.
    """
    stop = data.rfind(b"\n", pos) + 1
    if stop <= pos:
        return [], pos
    out: list[Segment] = []
    p = pos
    find = data.find
    while p < stop:
        q = short_run_end(data, p, stop, cap)
        if q > p:
            out.append((p, q, False))
        if q < stop:
            nl = find(b"\n", q)
            out.append((q, nl + 1, True))
            q = nl + 1
        p = q
    return out, stop


def nth_line_end(data: bytes, n: int) -> int:
    """The offset just after the ``n``-th newline of ``data`` (``n`` >= 1; it must have them)."""
    pos = 0
    find = data.find
    for _ in range(n):
        pos = find(b"\n", pos) + 1
    return pos


ChunkEntry = tuple[RawChunk, Piece, int]


def split_chunk(entry: ChunkEntry, n: int) -> tuple[ChunkEntry, ChunkEntry]:
    """Split a ready chunk after its first ``n`` lines (0 < n < lines).

    An entry is (chunk, piece, end) where ``end`` is the file offset after the
    chunk and ``piece`` holds the byte before it (for the cursor). Every line of
    a chunk ends inside its piece, so the head's cursor can come from the same piece.
    """
    c, piece, end = entry
    cut = nth_line_end(c.data, n)
    head = RawChunk(c.source_id, c.offset, c.data[:cut], n, c.seq, c.time)
    tail = RawChunk(c.source_id, c.offset + cut, c.data[cut:], c.lines - n, c.seq + n, c.time)
    return (head, piece, c.offset + cut), (tail, piece, end)
