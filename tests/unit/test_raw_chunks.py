"""Raw mode in the engine: chunks of whole lines, long lines as records, exact cursors.

Real files in a temporary directory (read through the confined resolver with
"/" as the root); the reference is the same file read in records mode.
"""

from __future__ import annotations

import itertools
import os
import random
import re
from pathlib import Path

import pytest

from agent._follow import Start
from agent._logs import RAW_BATCH_BYTES, FileReader
from agent._logs_raw import nth_line_end, segments, short_run_end, split_chunk
from agent._logs_stream import LogStream
from agent.results.logs import RawChunk, Record, RecordKind, Source, SourceFormat, SourceKind
from tui.cli.logs_raw import safe_lines

CAP = 100


def _reader(path: Path, *, raw: bool, cursor: str | None = None, max_read: int = 0) -> FileReader:
    src = Source("s", SourceKind.CONFIG, str(path), "/")
    r = FileReader(
        src,
        cursor=cursor,
        start=Start.BEGINNING,
        tail_lines=0,
        gap_on_lost=False,
        keep=None,
        cap=CAP,
        full=False,
        raw=raw,
    )
    if max_read:
        r.follower.max_read = max_read
    return r


def _lines_of(batch_items: list[Record | RawChunk]) -> list[tuple[int, str, bool]]:
    """(seq, text, truncated) per line, chunks split, in seq order."""
    out: list[tuple[int, str, bool]] = []
    for x in sorted(batch_items, key=lambda x: x.seq):
        if isinstance(x, RawChunk):
            assert x.data.endswith(b"\n") and x.data.count(b"\n") == x.lines
            for i, line in enumerate(x.data.split(b"\n")[: x.lines]):
                assert len(line) <= CAP, "a long line inside a chunk"
                out.append((x.seq + i, line.decode("utf-8", "replace"), False))
        else:
            out.append((x.seq, x.raw, x.truncated))
    return out


def _drain(stream: LogStream) -> tuple[list[tuple[int, str, bool]], list[str]]:
    items: list[Record | RawChunk] = []
    cursors: list[str] = []
    while True:
        b = stream.poll()
        if b is None:
            if all(r.idle for r in stream.readers):  # a read found nothing new: the end
                break
            continue  # a read that ended inside a line: nothing to hand out yet
        items += [*b.records, *b.chunks]
        if "s" in b.cursors:
            cursors.append(b.cursors["s"])
    return _lines_of(items), cursors


def _random_log(rng: random.Random, n: int) -> bytes:
    parts = []
    for i in range(n):
        k = rng.choice([0, 0, 3, 40, 95, 96, 97, 98, 99, 150, 400])
        body = (b"%d " % i + b"x" * k)[: max(k, len(b"%d" % i))]
        if rng.random() < 0.05:
            body += "é".encode()  # non-ASCII
        parts.append(body + (b"\r\n" if rng.random() < 0.02 else b"\n"))
    return b"".join(parts)


def test_short_run_end_and_segments_match_a_naive_split() -> None:
    """Every cut agrees with splitting line by line, for random data and caps."""
    rng = random.Random(7)
    for _ in range(300):
        cap = rng.choice([1, 2, 5, 16, 64])
        lines = [b"a" * rng.choice([0, 1, cap - 1, cap, cap + 1, 3 * cap]) for _ in range(30)]
        data = b"\n".join(lines) + (b"\n" if rng.random() < 0.5 else b"tail")
        segs, rest = segments(data, 0, cap)
        assert rest == data.rfind(b"\n") + 1
        covered = b"".join(data[s:e] for s, e, _ in segs)
        assert covered == data[:rest]
        for s, e, long in segs:
            pieces = data[s : e - 1].split(b"\n")
            if long:
                assert len(pieces) == 1 and len(pieces[0]) > cap
            else:
                assert all(len(p) <= cap for p in pieces)
        # runs are maximal: a short run is never followed by another short run
        kinds = [long for _, _, long in segs]
        assert all(a or b for a, b in itertools.pairwise(kinds))
        assert short_run_end(data, 0, rest, cap) == (segs[0][1] if segs and not segs[0][2] else 0)


def test_split_chunk_cuts_at_a_line_boundary(tmp_path: Path) -> None:
    """A chunk split after n lines: the parts hold the same lines, seq and offsets line up,
    and the head's cursor resumes exactly at the tail's first line."""
    log = tmp_path / "a.log"
    log.write_bytes(b"".join(b"line %d\n" % i for i in range(50)))
    r = _reader(log, raw=True)
    out: list[Record | RawChunk] = []
    assert r.take(20, out) == 20
    (head,) = out
    assert isinstance(head, RawChunk) and head.lines == 20 and head.seq == 0
    assert head.data == b"".join(b"line %d\n" % i for i in range(20))
    resumed = _reader(log, raw=True, cursor=r.cursor)
    out2: list[Record | RawChunk] = []
    resumed.take(1000, out2)
    assert out2[0].data.startswith(b"line 20\n")  # type: ignore[union-attr]
    assert out2[0].offset == len(head.data)
    out3: list[Record | RawChunk] = []
    assert r.take(1000, out3) == 30
    assert out3[0].seq == 20 and out3[0].offset == len(head.data)  # type: ignore[union-attr]
    assert nth_line_end(b"a\nbb\nccc\n", 2) == 5
    c = RawChunk("s", 10, b"a\nbb\nccc\n", 3, 5, 0.0)
    (h, _, hend), (t, _, tend) = split_chunk((c, None, 19), 1)  # type: ignore[arg-type]
    assert (h.data, h.lines, h.seq, hend) == (b"a\n", 1, 5, 12)
    assert (t.data, t.offset, t.lines, t.seq, tend) == (b"bb\nccc\n", 12, 2, 6, 19)
    r.close()
    resumed.close()


@pytest.mark.parametrize("max_read", [7, 100, 1000, 1 << 18])
def test_raw_mode_delivers_what_records_mode_does(tmp_path: Path, max_read: int) -> None:
    """Random line lengths (short, at the cap, long), reads cut anywhere: raw mode yields the
    same lines with the same seq as records mode; long lines are truncated records in both."""
    log = tmp_path / "a.log"
    log.write_bytes(_random_log(random.Random(max_read), 3000) + b"unfinished")
    rec_lines, rec_cursors = _drain(
        LogStream([_reader(log, raw=False, max_read=max_read)], max_batch=333)
    )
    raw_lines, raw_cursors = _drain(
        LogStream([_reader(log, raw=True, max_read=max_read)], max_batch=333, raw=True)
    )
    assert [s for s, _, _ in raw_lines] == list(range(3000))
    # CRLF: records drop the CR in the fast path only; compare without it
    assert [(s, t.rstrip("\r"), tr) for s, t, tr in raw_lines] == [
        (s, t.rstrip("\r"), tr) for s, t, tr in rec_lines
    ]
    assert any(tr for _, _, tr in raw_lines)
    assert raw_cursors[-1] == rec_cursors[-1]  # both stop before the unfinished line


@pytest.mark.parametrize("max_read", [13, 4096])
def test_resume_from_every_raw_cursor_is_exact(tmp_path: Path, max_read: int) -> None:
    """After each batch (cut mid-chunk by max_batch), a new reader from its cursor starts
    exactly at the next line: nothing twice, nothing skipped."""
    log = tmp_path / "a.log"
    log.write_bytes(_random_log(random.Random(3), 800))
    stream = LogStream([_reader(log, raw=True, max_read=max_read)], max_batch=37, raw=True)
    done = 0
    while done < 800:
        b = stream.poll()
        if b is None:
            continue
        done += len(b.records) + sum(c.lines for c in b.chunks)
        if "s" not in b.cursors or done >= 800:
            continue
        r2 = _reader(log, raw=True, cursor=b.cursors["s"])
        out: list[Record | RawChunk] = []
        r2.take(1, out)
        first = _lines_of(out)[0][1]
        number = re.match(r"\d+", first)
        assert number is not None and int(number.group()) == done, (done, first[:20])
        r2.close()
    assert done == 800


def test_partial_line_completed_later_is_one_line(tmp_path: Path) -> None:
    """A line written in pieces arrives once, whole, in a chunk; an over-cap line written in
    pieces arrives as a truncated record; the cursor never lands inside a line."""
    log = tmp_path / "a.log"
    log.write_bytes(b"first\nsecond hal")
    r = _reader(log, raw=True)
    out: list[Record | RawChunk] = []
    r.take(100, out)
    assert [x.data for x in out] == [b"first\n"]  # type: ignore[union-attr]
    cursor_before = r.cursor
    with log.open("ab") as f:
        f.write(b"f\nthird " + b"y" * 80)
    out = []
    r.take(100, out)
    assert _lines_of(out) == [(1, "second half", False)]
    assert out[0].offset == 6  # type: ignore[union-attr]
    with log.open("ab") as f:
        f.write(b"z" * 80 + b"\nfourth\n")
    out = []
    r.take(100, out)
    lines = _lines_of(out)
    assert lines[0][0] == 2 and lines[0][2] and lines[0][1].startswith("third yyy")
    assert lines[1] == (3, "fourth", False)
    assert isinstance(out[0], Record) and out[0].kind == RecordKind.LINE
    assert r.cursor != cursor_before
    r.close()


def test_rotation_notice_orders_between_chunks(tmp_path: Path) -> None:
    """Rename rotation in raw mode: the old file's rest (with its unterminated last line),
    a NOTICE, then the new file, in seq order."""
    log = tmp_path / "a.log"
    log.write_bytes(b"a1\na2\n")
    src = Source("s", SourceKind.CONFIG, str(log), "/")
    r = FileReader(
        src,
        cursor=None,
        start=Start.BEGINNING,
        tail_lines=0,
        gap_on_lost=False,
        keep=None,
        cap=CAP,
        full=False,
        raw=True,
    )
    r.follower.rotate_grace = 0.0
    stream = LogStream([r], max_batch=100, raw=True)
    items: list[Record | RawChunk] = []
    b = stream.poll()
    assert b is not None
    items += [*b.records, *b.chunks]
    with log.open("ab") as f:
        f.write(b"a3\na4-unterminated")
    os.replace(log, tmp_path / "a.log.1")
    log.write_bytes(b"b1\n")
    for _ in range(50):
        b = stream.poll()
        if b is not None:
            items += [*b.records, *b.chunks]
        if any(isinstance(x, RawChunk) and b"b1" in x.data for x in items):
            break
        r.follower.wait(0.02)
    ordered = sorted(items, key=lambda x: x.seq)
    texts = [
        x.data.decode() if isinstance(x, RawChunk) else f"<{RecordKind(x.kind).name}>"
        for x in ordered
    ]
    assert texts == ["a1\na2\n", "a3\n", "a4-unterminated\n", "<NOTICE>", "b1\n"], texts
    r.close()


def test_safe_lines_escapes_like_sanitize() -> None:
    """The CLI's bulk sanitiser: clean ASCII is returned as is (same object); controls,
    C1, bidi overrides and invalid UTF-8 are escaped or replaced; CRLF loses its CR."""
    clean = b"plain line\twith tab\n" * 100
    assert safe_lines(clean) is clean
    assert safe_lines(b"a\r\nb\n") == b"a\nb\n"
    assert safe_lines(b"x\x1b[31mred\n") == b"x\\x1b[31mred\n"
    assert safe_lines(b"bare\rcr\n") == b"bare\\rcr\n"
    assert safe_lines("bidi \u202e evil\n".encode()) == b"bidi \\u202e evil\n"
    assert safe_lines("c1 \u009b x\n".encode()) == b"c1 \\x9b x\n"
    assert safe_lines(b"bad \xff utf8\n") == "bad \ufffd utf8\n".encode()
    assert safe_lines("ok é\n".encode()) == "ok é\n".encode()


def test_limit_max_batch_and_byte_bound(tmp_path: Path) -> None:
    """A limit counts chunk lines (a chunk is cut to fit); max_batch bounds lines per batch;
    a raw batch from many sources stops growing past RAW_BATCH_BYTES."""
    log = tmp_path / "a.log"
    log.write_bytes(b"".join(b"n=%d\n" % i for i in range(100)))
    stream = LogStream([_reader(log, raw=True)], max_batch=30, limit=47, raw=True)
    sizes = []
    while not stream.done and (b := stream.poll()) is not None:
        sizes.append(sum(c.lines for c in b.chunks) + len(b.records))
    assert sizes == [30, 17] and stream.sent == 47
    big = b"y" * 90 + b"\n"
    paths = []
    for k in range(8):
        p = tmp_path / f"s{k}.log"
        p.write_bytes(big * 3000)  # 273 KB each: one read (256 KiB) per poll
        paths.append(p)
    readers = [_reader(p, raw=True) for p in paths]
    for i, r in enumerate(readers):
        r.id = f"s{i}"
    b = LogStream(readers, max_batch=100_000, raw=True).poll()
    assert b is not None
    total = sum(len(c.data) for c in b.chunks)
    assert RAW_BATCH_BYTES <= total < RAW_BATCH_BYTES + (256 << 10)
    assert len({c.source_id for c in b.chunks}) < 8  # the rest waits in the other files
    for r in readers:
        r.close()


def test_cri_and_filtered_sources_are_never_raw(tmp_path: Path) -> None:
    """CRI lines need joining and a filter needs parsed lines: such readers hand out records."""
    log = tmp_path / "c.log"
    log.write_bytes(b"2024-01-01T00:00:00Z stdout F hello\n")
    cri = FileReader(
        Source("c", SourceKind.STDIO, str(log), "/", format=SourceFormat.CRI),
        cursor=None,
        start=Start.BEGINNING,
        tail_lines=0,
        gap_on_lost=False,
        keep=None,
        cap=CAP,
        full=False,
        raw=True,
    )
    out: list[Record | RawChunk] = []
    cri.take(10, out)
    assert not cri.raw and [type(x) for x in out] == [Record] and out[0].raw == "hello"
    filtered = FileReader(
        Source("f", SourceKind.CONFIG, str(log), "/"),
        cursor=None,
        start=Start.BEGINNING,
        tail_lines=0,
        gap_on_lost=False,
        keep=lambda r: True,
        cap=CAP,
        full=False,
        raw=True,
    )
    assert not filtered.raw
    cri.close()
    filtered.close()
