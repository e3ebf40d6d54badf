"""The byte follower: cursors, rotation by rename and copytruncate, gaps, bounds.

Real files in a temporary directory used as the container's root ("/"-relative
paths resolved inside it by the confined resolver), real writer threads.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from pathlib import Path

import pytest

from agent._follow import Follower, PieceKind, Start, make_cursor, parse_cursor
from agent.errors import CursorLost, InvalidArgument, NotFound


def _drain(f: Follower, until: float = 0.3, limit: float = 20.0) -> tuple[bytes, list[str]]:
    """Read until nothing new has come for ``until`` seconds; (data, gap/notice reasons)."""
    data = bytearray()
    notes: list[str] = []
    quiet_since = time.monotonic()
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        pieces = f.read()
        for p in pieces:
            if p.kind is PieceKind.DATA:
                data += p.data
            else:
                notes.append(f"{p.kind.value}: {p.reason}")
        if any(p.data for p in pieces):
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since > until:
            break
        else:
            f.wait(0.005)
    return bytes(data), notes


def _lines(data: bytes) -> list[int]:
    return [int(x) for x in data.decode().splitlines()]


def test_follows_appends_from_beginning_and_end(tmp_path: Path) -> None:
    """BEGINNING returns existing bytes then appends; END returns only what is appended later."""
    log = tmp_path / "app.log"
    log.write_bytes(b"old\n")
    with (
        Follower(str(tmp_path), "/app.log", start=Start.BEGINNING) as a,
        Follower(str(tmp_path), "/app.log", start=Start.END) as b,
    ):
        with log.open("ab") as w:
            w.write(b"new\n")
        assert _drain(a)[0] == b"old\nnew\n"
        assert _drain(b)[0] == b"new\n"


def test_tail_lines_starts_n_lines_before_end(tmp_path: Path) -> None:
    """tail_lines=N begins at the start of the last N lines, with or without a final newline."""
    (tmp_path / "a.log").write_bytes(b"1\n2\n3\n4\n")
    (tmp_path / "b.log").write_bytes(b"1\n2\n3\n4")
    with Follower(str(tmp_path), "/a.log", tail_lines=2) as f:
        assert _drain(f, 0.05)[0] == b"3\n4\n"
    with Follower(str(tmp_path), "/b.log", tail_lines=2) as f:
        assert _drain(f, 0.05)[0] == b"3\n4"
    with Follower(str(tmp_path), "/a.log", tail_lines=50) as f:
        assert _drain(f, 0.05)[0] == b"1\n2\n3\n4\n"


def test_resume_from_cursor_is_exactly_once(tmp_path: Path) -> None:
    """A cursor taken mid-read resumes at exactly the next byte: no repeat, no loss."""
    log = tmp_path / "app.log"
    log.write_bytes(b"".join(b"%d\n" % i for i in range(1000)))
    with Follower(str(tmp_path), "/app.log", start=Start.BEGINNING, max_read=1000) as f:
        first = f.read()[0]
        cut = first.data.rindex(b"\n") + 1
        cursor = first.cursor_at(cut)
    with log.open("ab") as w:
        w.write(b"1000\n")
    with Follower(str(tmp_path), "/app.log", cursor=cursor) as g:
        rest, _ = _drain(g, 0.05)
    assert _lines(first.data[:cut] + rest) == list(range(1001))


def test_rotation_by_rename_loses_nothing(tmp_path: Path) -> None:
    """A writer rotating like RotatingFileHandler (app.log -> .1 -> .2 ...) 8 times: every line once, in order."""
    log = tmp_path / "app.log"
    log.touch()
    total, per_file = 20_000, 2_500
    f = Follower(str(tmp_path), "/app.log", start=Start.BEGINNING, rotate_grace=0.05)

    def writer() -> None:
        w = log.open("ab", buffering=0)
        for i in range(total):
            w.write(b"%d\n" % i)
            if i % per_file == per_file - 1:
                w.close()
                for n in range(9, 0, -1):  # shift backups, newest is .1
                    if (tmp_path / f"app.log.{n}").exists():
                        os.replace(tmp_path / f"app.log.{n}", tmp_path / f"app.log.{n + 1}")
                os.replace(log, tmp_path / "app.log.1")
                w = log.open("ab", buffering=0)
        w.close()

    t = threading.Thread(target=writer)
    t.start()
    data, notes = _drain(f, until=1.0)
    t.join()
    f.close()
    assert _lines(data) == list(range(total))
    assert any("rotated" in n for n in notes)
    assert not any(n.startswith("gap") for n in notes)


def test_two_rotations_while_behind_reads_middle_file(tmp_path: Path) -> None:
    """When the file was rotated twice before the follower looked, the middle file is read too."""
    log = tmp_path / "app.log"
    log.write_bytes(b"a\n")
    f = Follower(str(tmp_path), "/app.log", start=Start.BEGINNING, rotate_grace=0.0)
    assert _drain(f, 0.05)[0] == b"a\n"
    os.replace(log, tmp_path / "app.log.2")
    log.write_bytes(b"b\n")
    time.sleep(0.01)  # distinct mtimes order the rotated files
    os.replace(log, tmp_path / "app.log.1")
    log.write_bytes(b"c\n")
    data, _ = _drain(f, 0.2)
    f.close()
    assert data == b"b\nc\n"


def test_copytruncate_during_follow_loses_nothing(tmp_path: Path) -> None:
    """Writer copytruncates twice mid-stream while a reader follows: every number exactly once."""
    log = tmp_path / "app.log"
    log.touch()
    total = 30_000
    f = Follower(str(tmp_path), "/app.log", start=Start.BEGINNING, max_read=8192)
    got = bytearray()
    notes: list[str] = []
    lock = threading.Lock()

    def pump() -> None:
        with lock:
            for p in f.read():
                if p.kind is PieceKind.DATA:
                    got.extend(p.data)
                else:
                    notes.append(f"{p.kind.value}: {p.reason}")

    with log.open("ab", buffering=0) as w:
        for i in range(total):
            w.write(b"%d\n" % i)
            if i % 997 == 0:
                pump()  # the reader runs interleaved with the writer, usually behind it
            if i in (10_000, 20_000):
                shutil.copyfile(log, tmp_path / "app.log.1")
                os.truncate(log, 0)
    data, more = _drain(f, 0.3)
    f.close()
    assert _lines(bytes(got) + data) == list(range(total))
    assert sum("truncated" in n for n in notes + more) == 2
    assert not any(n.startswith("gap") for n in notes + more)


def test_truncation_without_copy_is_an_explicit_gap(tmp_path: Path) -> None:
    """Truncated with no copy holding the unread bytes: a GAP piece says so, then the new content."""
    log = tmp_path / "app.log"
    log.write_bytes(b"x" * 100 + b"\n")
    f = Follower(str(tmp_path), "/app.log", start=Start.BEGINNING, max_read=10)
    f.read()
    os.truncate(log, 0)
    with log.open("ab") as w:
        w.write(b"fresh\n")
    data, notes = _drain(f, 0.1)
    f.close()
    assert data == b"fresh\n"
    assert any(n.startswith("gap") and "91" in n for n in notes)


def test_truncate_and_refill_past_offset_detected(tmp_path: Path) -> None:
    """Truncated and refilled beyond our offset between two reads: the check bytes catch it."""
    log = tmp_path / "app.log"
    log.write_bytes(b"aaaa\n")
    f = Follower(str(tmp_path), "/app.log", start=Start.BEGINNING)
    assert _drain(f, 0.05)[0] == b"aaaa\n"
    log.write_bytes(b"bbbbbbbbbbbbbbbbbbbb\n")  # truncate + write in one go: size grew
    data, notes = _drain(f, 0.05)
    f.close()
    assert data == b"bbbbbbbbbbbbbbbbbbbb\n"
    assert any("truncated" in n for n in notes)


def test_lost_cursor_fails_with_earliest_or_gives_gap(tmp_path: Path) -> None:
    """A cursor into a vanished file: CursorLost naming the earliest cursor, or a GAP first when asked."""
    log = tmp_path / "app.log"
    log.write_bytes(b"one\n")
    with Follower(str(tmp_path), "/app.log", start=Start.BEGINNING) as f:
        _drain(f, 0.05)
        cursor = f.cursor
    log.unlink()
    log.write_bytes(b"two\n")
    with pytest.raises(CursorLost) as e:
        Follower(str(tmp_path), "/app.log", cursor=cursor)
    with Follower(str(tmp_path), "/app.log", cursor=e.value.earliest) as g:
        assert _drain(g, 0.05)[0] == b"two\n"
    with Follower(str(tmp_path), "/app.log", cursor=cursor, gap_on_lost=True) as h:
        pieces = h.read()
        assert pieces[0].kind is PieceKind.GAP
        assert _drain(h, 0.05)[0] == b"two\n" or pieces[1].data == b"two\n"


def test_cursor_into_rotated_file_resumes_there(tmp_path: Path) -> None:
    """A cursor whose file was renamed to app.log.1 resumes in app.log.1, then reads app.log."""
    log = tmp_path / "app.log"
    log.write_bytes(b"1\n")
    with Follower(str(tmp_path), "/app.log", start=Start.BEGINNING) as f:
        _drain(f, 0.05)
        cursor = f.cursor
    with log.open("ab") as w:
        w.write(b"2\n")
    os.replace(log, tmp_path / "app.log.1")
    log.write_bytes(b"3\n")
    with Follower(str(tmp_path), "/app.log", cursor=cursor, rotate_grace=0) as g:
        assert _drain(g, 0.1)[0] == b"2\n3\n"


def test_refilled_file_invalidates_cursor(tmp_path: Path) -> None:
    """Same inode, same size, other bytes: the cursor's check bytes refuse to resume mid-line."""
    log = tmp_path / "app.log"
    log.write_bytes(b"hello world\n")
    with Follower(str(tmp_path), "/app.log", start=Start.BEGINNING) as f:
        _drain(f, 0.05)
        cursor = f.cursor
    with log.open("r+b") as w:
        w.write(b"HELLO WORLD\n")
    with pytest.raises(CursorLost):
        Follower(str(tmp_path), "/app.log", cursor=cursor)


def test_late_writes_to_rotated_file_are_reported(tmp_path: Path) -> None:
    """Bytes appended to the old file after we moved on become a GAP, not silence."""
    log = tmp_path / "app.log"
    log.write_bytes(b"a\n")
    old = log.open("ab", buffering=0)
    f = Follower(str(tmp_path), "/app.log", start=Start.BEGINNING, rotate_grace=0.0)
    _drain(f, 0.05)
    os.replace(log, tmp_path / "app.log.1")
    log.write_bytes(b"b\n")
    data, _ = _drain(f, 0.1)
    assert data == b"b\n"
    old.write(b"late\n")
    old.close()
    _, notes = _drain(f, 0.1)
    f.close()
    assert any(n.startswith("gap") and "5 bytes" in n for n in notes)


def test_bounded_reads(tmp_path: Path) -> None:
    """One read() never returns more than max_read bytes of data."""
    (tmp_path / "big.log").write_bytes(b"z" * 100_000)
    with Follower(str(tmp_path), "/big.log", start=Start.BEGINNING, max_read=4096) as f:
        assert all(len(p.data) <= 4096 for p in f.read())
        assert len(f.read(100)[0].data) == 100


def test_refuses_fifo_and_missing_and_bad_cursor(tmp_path: Path) -> None:
    """A FIFO is refused without hanging; a missing path is NotFound; garbage cursors are InvalidArgument."""
    os.mkfifo(tmp_path / "pipe")
    with pytest.raises(InvalidArgument):
        Follower(str(tmp_path), "/pipe")
    with pytest.raises(NotFound):
        Follower(str(tmp_path), "/nope.log")
    (tmp_path / "a.log").write_bytes(b"")
    for bad in ("", "x", "f1.1.2.3", "f1.zz.1.1.1", "f1.-1.1.1.1"):
        with pytest.raises(InvalidArgument):
            Follower(str(tmp_path), "/a.log", cursor=bad)


def test_symlink_cannot_escape_root(tmp_path: Path) -> None:
    """A log path that is a symlink to an absolute host path resolves inside the root instead."""
    root = tmp_path / "root"
    root.mkdir()
    secret = tmp_path / "secret.log"
    secret.write_bytes(b"host secret\n")
    (root / "app.log").symlink_to(secret)  # absolute: /tmp/.../secret.log, not inside root
    with pytest.raises(NotFound):
        Follower(str(root), "/app.log", start=Start.BEGINNING)


def test_cursor_round_trip() -> None:
    """make_cursor/parse_cursor agree and the cursor is one opaque token."""
    c = make_cursor(0x801, 12345, 99, b"0123456789abcdef")
    p = parse_cursor(c)
    assert (p.dev, p.ino, p.offset) == (0x801, 12345, 99)
    assert " " not in c
