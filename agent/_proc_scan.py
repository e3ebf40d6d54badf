"""The hot path: one pass over /proc reading what a process listing needs.

Measured on 1,000 sleepers (see benchmarks/bench_ps.py): psutil's
``process_iter`` costs about 2.5x ``ps``; this reader opens ``/proc/PID`` once
as a directory and reads relative to it (``openat``), which skips the path
walk for every file, and takes the fd count from ``stat("fd").st_size``
(Linux >= 6.2 reports the number of open fds there; older kernels report 0,
and then the directory is listed). Holding the directory fd also pins the
process: if the pid is reused mid-read, reads fail with ESRCH instead of
returning another process's data.

Imports only ``_common`` and the results, so ``_pod`` and ``_proc`` can both use it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Collection

from agent._common import CLK_TCK, parse_stat, text
from agent.results.pod import Unavailable

PF_KTHREAD = 0x00200000  # include/linux/sched.h: kernel threads are nobody's container
PTRACE_HINT = "needs the same UID or CAP_SYS_PTRACE"
CMDLINE_MAX = 64 << 10

_O_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
_O_RD = os.O_RDONLY | os.O_CLOEXEC

STATES = {
    "R": "R (running)",
    "S": "S (sleeping)",
    "D": "D (disk sleep)",
    "T": "T (stopped)",
    "t": "t (tracing stop)",
    "X": "X (dead)",
    "Z": "Z (zombie)",
    "P": "P (parked)",
    "I": "I (idle)",
    "W": "W (paging)",
}

#: Optional per-process fields, each costing a syscall or two per process.
OPTIONAL_FIELDS = ("fds", "exe", "cwd", "io", "ctx_switches")


class Vanished(Exception):
    """The process exited while it was being read (not an error for a listing)."""


class RawProc:
    """What one pass over /proc/PID found; mutable and cheap (no validation)."""

    __slots__ = (
        "cmdline",
        "comm",
        "ctx",
        "cwd",
        "exe",
        "fds",
        "io",
        "mnt_ns",
        "nice",
        "pid",
        "ppid",
        "rss_pages",
        "start_ticks",
        "state",
        "stime",
        "threads",
        "uid",
        "unavailable",
        "utime",
        "vsize",
    )

    pid: int
    start_ticks: int
    ppid: int
    comm: str
    state: str
    uid: int
    utime: int
    stime: int
    nice: int
    threads: int
    vsize: int
    rss_pages: int
    cmdline: tuple[str, ...]
    mnt_ns: int | None
    fds: int | None
    exe: str | None
    cwd: str | None
    io: tuple[int, ...] | None
    ctx: tuple[int, int] | None
    unavailable: list[Unavailable]


def read_at(dfd: int, name: str, limit: int = 4096) -> bytes:
    """Read up to ``limit`` bytes of ``name`` relative to directory fd ``dfd``."""
    fd = os.open(name, _O_RD, dir_fd=dfd)
    try:
        return os.read(fd, limit)
    finally:
        os.close(fd)


def read_all_at(dfd: int, name: str, limit: int) -> bytes:
    """Read ``name`` (relative to ``dfd``) to EOF or ``limit`` bytes."""
    fd = os.open(name, _O_RD, dir_fd=dfd)
    try:
        chunk = os.read(fd, 4096)
        if len(chunk) < 4096:
            return chunk
        parts = [chunk]
        size = len(chunk)
        while size < limit:
            chunk = os.read(fd, min(65536, limit - size))
            if not chunk:
                break
            parts.append(chunk)
            size += len(chunk)
        return b"".join(parts)
    finally:
        os.close(fd)


def open_pid(proc: str, pid: int | str) -> int:
    """Open ``/proc/PID`` as a directory fd (pins that process's identity).

    Raises:
        Vanished: no such process.
    """
    try:
        return os.open(f"{proc}/{pid}", _O_DIR)
    except (FileNotFoundError, ProcessLookupError):
        raise Vanished(pid) from None


def split_cmdline(raw: bytes) -> tuple[str, ...]:
    """NUL-separated argv -> strings (a trailing NUL is not an empty argument)."""
    if not raw:
        return ()
    if raw.endswith(b"\0"):
        raw = raw[:-1]
    # One decode, then split: NUL never occurs inside a UTF-8 sequence.
    return tuple(text(raw).split("\0"))


def _fd_size_counts() -> bool:
    # This process always has fds open: a 0 here means the kernel does not count.
    return os.stat("/proc/self/fd").st_size > 0


#: Linux >= 6.2 reports the number of open fds as the size of /proc/PID/fd.
FD_SIZE_COUNTS = _fd_size_counts()


def fd_count(dfd: int, size: int | None = None) -> int:
    """Open fds of the process behind ``dfd`` (st_size on Linux >= 6.2, else a listing).

    Args:
        size: st_size of its ``fd`` directory, when the caller already has it.
    """
    if FD_SIZE_COUNTS:
        return os.stat("fd", dir_fd=dfd).st_size if size is None else size
    # Older kernels: list the directory (needs the ptrace access check).
    fd = os.open("fd", _O_DIR, dir_fd=dfd)
    try:
        return len(os.listdir(fd))
    finally:
        os.close(fd)


def _missing(what: str, err: OSError) -> Unavailable:
    if isinstance(err, PermissionError):
        return Unavailable(what, PTRACE_HINT)
    return Unavailable(what, err.strerror or type(err).__name__)


def _optional(p: RawProc, dfd: int, want: Collection[str]) -> None:
    """Fill the optional fields asked for; unreadable ones go to ``unavailable``."""
    zombie = p.state == "Z"
    for name in ("exe", "cwd"):
        if name not in want:
            continue
        try:
            setattr(p, name, text(os.fsencode(os.readlink(name, dir_fd=dfd))))
        except (PermissionError, FileNotFoundError, ProcessLookupError) as e:
            reason = "process is a zombie" if zombie else None
            p.unavailable.append(Unavailable(name, reason) if reason else _missing(name, e))
    if "io" in want:
        try:
            vals = [int(line.split()[1]) for line in read_at(dfd, "io").splitlines()[:7]]
            # rchar wchar syscr syscw read_bytes write_bytes (cancelled_write_bytes)
            p.io = tuple(vals[:6])
        except (PermissionError, FileNotFoundError, ProcessLookupError) as e:
            p.unavailable.append(_missing("io", e))
    if "ctx_switches" in want:
        try:
            status = read_all_at(dfd, "status", 16 << 10)
            i = status.index(b"voluntary_ctxt_switches:")
            vol, invol = status[i:].split(b"\n", 2)[:2]
            p.ctx = (int(vol.split()[1]), int(invol.split()[1]))
        except (PermissionError, FileNotFoundError, ProcessLookupError) as e:
            p.unavailable.append(_missing("ctx_switches", e))
        except ValueError:
            p.unavailable.append(Unavailable("ctx_switches", "not reported by this kernel"))


class MntCache:
    """(pid, start_ticks) -> mount namespace inode, for settled processes.

    stat("ns/mnt") is the costliest call of a listing (a ptrace access check
    per process). A process changes namespace (``unshare``) right after it
    starts, not later, so the value read once it is ``SETTLE_S`` old is kept.
    Each full scan replaces the table, so it holds live processes only.
    """

    SETTLE_S = 2.0

    def __init__(self) -> None:
        self.table: dict[tuple[int, int], int] = {}

    def settled_before(self) -> float:
        """Start tick before which a cached namespace may be reused."""
        return (time.clock_gettime(time.CLOCK_BOOTTIME) - self.SETTLE_S) * CLK_TCK


MNT_CACHE = MntCache()


def _stat_fields(p: RawProc, f: list[bytes]) -> None:
    p.state = f[0].decode()
    p.ppid = int(f[1])
    p.utime = int(f[11])
    p.stime = int(f[12])
    p.nice = int(f[16])
    p.threads = int(f[17])
    p.start_ticks = int(f[19])
    p.vsize = int(f[20])
    p.rss_pages = int(f[21])
    p.unavailable = []
    p.fds = p.exe = p.cwd = p.io = p.ctx = None


def _mnt_ns(dfd: int, p: RawProc, cached: int | None) -> int | None:
    if cached is not None:
        return cached
    try:
        return os.stat("ns/mnt", dir_fd=dfd).st_ino
    except PermissionError:
        return None
    except (FileNotFoundError, ProcessLookupError):
        if p.state != "Z":
            raise Vanished(p.pid) from None
        return None  # a zombie has no namespaces left; grouped with its parent


def read_proc(
    dfd: int,
    pid: int,
    want: Collection[str] = (),
    *,
    cmdline: bool = True,
    mnt_seen: dict[tuple[int, int], int] | None = None,
    settled_before: float = 0.0,
) -> RawProc | None:
    """Read one process through its directory fd; None for a kernel thread.

    Args:
        mnt_seen: a scan's new ``MntCache`` table to fill.
        settled_before: start tick before which a cached namespace may be reused.

    Raises:
        Vanished: it exited meanwhile.
    """
    try:
        fd = os.open("stat", _O_RD, dir_fd=dfd)
        try:
            comm, f = parse_stat(os.read(fd, 2048))
        finally:
            os.close(fd)
    except (FileNotFoundError, ProcessLookupError):
        raise Vanished(pid) from None
    if int(f[6]) & PF_KTHREAD:
        return None
    p = RawProc()
    p.pid = pid
    p.comm = comm
    _stat_fields(p, f)
    try:
        # The effective uid is the owner of /proc/PID itself. Not of /proc/PID/fd:
        # for a non-dumpable process (the sidecar, any daemon that dropped root
        # via setuid) the kernel makes every mode-0500 entry root-owned, while
        # world-readable dirs keep the euid (task_dump_owner in fs/proc/base.c).
        p.uid = os.fstat(dfd).st_uid
        if "fds" in want:
            try:
                p.fds = fd_count(dfd, os.stat("fd", dir_fd=dfd).st_size)
            except PermissionError as e:
                p.unavailable.append(_missing("fds", e))
        p.cmdline = split_cmdline(read_all_at(dfd, "cmdline", CMDLINE_MAX)) if cmdline else ()
    except (FileNotFoundError, ProcessLookupError):
        raise Vanished(pid) from None
    key = (pid, p.start_ticks)
    cached = MNT_CACHE.table.get(key) if p.start_ticks < settled_before else None
    p.mnt_ns = _mnt_ns(dfd, p, cached)
    if p.mnt_ns is not None and mnt_seen is not None:
        mnt_seen[key] = p.mnt_ns
    if want:
        _optional(p, dfd, want)
    return p


def pids(proc: str) -> list[int]:
    """Every pid in ``proc`` right now."""
    return [int(n) for n in os.listdir(proc) if n.isdigit()]


def scan(proc: str, want: Collection[str] = (), cmdline: bool = True) -> list[RawProc]:
    """Every user-space process in ``proc``; vanishing processes are skipped.

    Args:
        want: optional fields to read (see ``OPTIONAL_FIELDS``).
        cmdline: read the command line (grouping alone does not need it).
    """
    out: list[RawProc] = []
    append = out.append
    seen: dict[tuple[int, int], int] = {}
    settled = MNT_CACHE.settled_before()
    for name in os.listdir(proc):
        if not name.isdigit():
            continue
        try:
            dfd = os.open(f"{proc}/{name}", _O_DIR)
        except (FileNotFoundError, ProcessLookupError):
            continue  # exited between listdir and open: not an error
        try:
            p = read_proc(
                dfd, int(name), want, cmdline=cmdline, mnt_seen=seen, settled_before=settled
            )
        except Vanished:
            continue
        finally:
            os.close(dfd)
        if p is not None:
            append(p)
    MNT_CACHE.table = seen
    return out
