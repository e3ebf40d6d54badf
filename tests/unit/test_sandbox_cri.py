"""The sandbox's CRI capture: the format the node writes, partial lines, rotation."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from sidecar.sandbox import cri

LINE = re.compile(rb"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z) (stdout|stderr) (F|P) (.*)$", re.S)


def _records(path: Path) -> list[tuple[bytes, bytes, bytes]]:
    out = []
    for raw in path.read_bytes().split(b"\n")[:-1]:
        m = LINE.match(raw)
        assert m, raw
        out.append((m.group(2), m.group(3), m.group(4)))
    return out


def test_timestamp_is_rfc3339_with_nanoseconds_in_utc() -> None:
    """timestamp() renders nanoseconds, zero-padded, with a Z."""
    assert cri.timestamp(1_795_420_800_000_000_007) == "2026-11-23T08:00:00.000000007Z"


def test_a_real_process_output_is_captured_line_by_line(tmp_path: Path) -> None:
    """stdout and stderr of a real child become F records with the exact line content."""
    w = cri.CriWriter(str(tmp_path / "c.log"))
    code = "import sys; print('hello'); print('wörld \\t x'); sys.stderr.write('oops\\n')"
    p = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert p.stdout and p.stderr
    seen: list[bytes] = []
    threads = [cri.pump(p.stdout, "stdout", w, seen.append), cri.pump(p.stderr, "stderr", w)]
    p.wait()
    for t in threads:
        t.join(5)
    w.close()
    recs = _records(tmp_path / "c.log")
    assert (b"stdout", b"F", b"hello") in recs
    assert (b"stdout", b"F", "wörld \t x".encode()) in recs
    assert (b"stderr", b"F", b"oops") in recs
    assert seen == [b"hello", "wörld \t x".encode()]


def test_long_and_unterminated_lines_become_partial_records(tmp_path: Path) -> None:
    """A line over the cap is split into P records then an F; a final line without newline is P."""
    w = cri.CriWriter(str(tmp_path / "c.log"))
    r, wfd = os.pipe()
    os.write(wfd, b"a" * 10 + b"\n" + b"b" * 25 + b"\n" + b"tail")
    os.close(wfd)
    cri.pump(os.fdopen(r, "rb"), "stdout", w, max_line=10).join(5)
    w.close()
    recs = _records(tmp_path / "c.log")
    assert recs == [
        (b"stdout", b"P", b"a" * 10),
        (b"stdout", b"F", b""),
        (b"stdout", b"P", b"b" * 10),
        (b"stdout", b"P", b"b" * 10),
        (b"stdout", b"F", b"b" * 5),
        (b"stdout", b"P", b"tail"),
    ]
    joined = b"".join(c for _, _, c in recs[2:5])
    assert joined == b"b" * 25, "P records concatenate back to the line"


def test_the_file_rotates_by_rename_at_its_size_cap(tmp_path: Path) -> None:
    """Past max_bytes the file is renamed to .1 and a new one started; nothing grows unbounded."""
    path = tmp_path / "c.log"
    w = cri.CriWriter(str(path), max_bytes=400)
    for i in range(20):
        w.write("stdout", f"line {i:02d}".encode(), True)
    w.close()
    assert os.stat(tmp_path / "c.log.1").st_ino != os.stat(path).st_ino
    assert path.stat().st_size <= 400 and (tmp_path / "c.log.1").stat().st_size <= 400
    last = [c for _, _, c in _records(path)]
    assert last[-1] == b"line 19"
    assert not (tmp_path / "c.log.2").exists(), "only one rotated file is kept"
