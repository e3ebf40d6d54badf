"""Small helpers shared by the agent's readers.

This module imports nothing from the rest of the package (like psutil's
``_common.py``), so every other module may import it.
"""

from __future__ import annotations

import os

PROC = "/proc"

#: Clock ticks per second, for /proc/PID/stat times.
CLK_TCK: int = os.sysconf("SC_CLK_TCK")
#: Page size, for statm/rss.
PAGE_SIZE: int = os.sysconf("SC_PAGE_SIZE")


def text(raw: bytes) -> str:
    """Decode bytes from the target for display: invalid UTF-8 becomes U+FFFD, never raises."""
    return raw.decode("utf-8", "replace")


def read_bytes(path: str, limit: int = 1 << 20) -> bytes:
    """Read at most ``limit`` bytes of a (usually /proc) file in one go."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        return os.read(fd, limit)
    finally:
        os.close(fd)


def boot_time() -> float:
    """Seconds since the epoch at which the machine booted (btime in /proc/stat)."""
    with open(f"{PROC}/stat", "rb") as f:
        for line in f:
            if line.startswith(b"btime "):
                return float(line.split()[1])
    raise OSError("no btime in /proc/stat")


def parse_stat(raw: bytes) -> tuple[str, list[bytes]]:
    """Split /proc/PID/stat into (comm, fields after comm).

    The comm is between the first '(' and the *last* ')': a process may name
    itself ``a) R 1 (b`` to confuse a naive split. ``fields[0]`` is the state
    (field 3 in proc(5)), so proc(5) field N is ``fields[N - 3]``.
    """
    lpar = raw.index(b"(")
    rpar = raw.rindex(b")")
    return text(raw[lpar + 1 : rpar]), raw[rpar + 2 :].split()


def why_gone(pid: int, start_ticks: int, proc: str = PROC) -> str:
    """Why the process (``pid``, ``start_ticks``) no longer runs; "" while it does.

    A zombie counts as gone; so does a pid now used by a process that started
    at another tick (``start_ticks`` 0: not checked).
    """
    if pid <= 0:
        return ""
    try:
        _comm, fields = parse_stat(read_bytes(f"{proc}/{pid}/stat", 2048))
    except (FileNotFoundError, ProcessLookupError):
        return "exited"
    if fields[0] in (b"Z", b"X"):
        return "exited"
    if start_ticks and int(fields[19]) != start_ticks:
        return "exited (its pid now belongs to another process)"
    return ""
