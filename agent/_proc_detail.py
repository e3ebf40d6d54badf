"""Detail sections of one process: environment, limits, open files, threads.

Every function reads through a directory fd of ``/proc/PID`` opened by
``ProcessReader.opened``, so it can never read a different process that
reused the pid. Each returns its data plus the ``Unavailable`` entries for
what it could not read.
"""

from __future__ import annotations

import fnmatch
import os
import re
import time
from collections.abc import Sequence

from agent._common import CLK_TCK, parse_stat, text
from agent._proc_scan import PTRACE_HINT, STATES, read_all_at, read_at
from agent.results.pod import Unavailable
from agent.results.proc import EnvVar, Limit, OpenFile, ThreadInfo

ENV_MAX = 1 << 20
MAX_FDS = 4096  # open files listed per request; the rest is reported as truncated
MAX_THREADS = 4096
THREAD_WINDOW_S = 0.1
_O_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC

_ACCESS = {0: "O_RDONLY", 1: "O_WRONLY", 2: "O_RDWR"}
# asm-generic/fcntl.h (x86_64 and aarch64 share these octal values).
_FLAG_BITS = (
    (0o100, "O_CREAT"),
    (0o200, "O_EXCL"),
    (0o1000, "O_TRUNC"),
    (0o2000, "O_APPEND"),
    (0o4000, "O_NONBLOCK"),
    (0o10000, "O_DSYNC"),
    (0o40000, "O_DIRECT"),
    (0o100000, "O_LARGEFILE"),
    (0o200000, "O_DIRECTORY"),
    (0o400000, "O_NOFOLLOW"),
    (0o1000000, "O_NOATIME"),
    (0o2000000, "O_CLOEXEC"),
    (0o4010000, "O_SYNC"),
    (0o10000000, "O_PATH"),
)


def _why(err: OSError) -> str:
    return PTRACE_HINT if isinstance(err, PermissionError) else (err.strerror or str(err))


ARGV_MASK = "***"


class Redactor:
    """Decides which environment values are secret, by shell-style name patterns.

    Matching ignores case: ``*PASSWORD*`` matches ``db_password``.
    """

    def __init__(self, patterns: Sequence[str], reveal: bool = False) -> None:
        self.reveal = reveal
        self._re = re.compile("|".join(fnmatch.translate(p.upper()) for p in patterns) or "(?!)")

    def secret(self, name: str) -> bool:
        """True when ``name`` looks secret."""
        return self._re.match(name.upper()) is not None

    def argv(self, args: tuple[str, ...]) -> tuple[str, ...]:
        """The command line as shown: values of secret-looking options are replaced by ``***``.

        ``--db-password=X`` and ``DB_PASSWORD=X`` keep their name; ``--token X`` hides
        the next argument. Nothing changes when reveal is on.
        """
        if self.reveal:
            return args
        out = list(args)
        hide_next = False
        for i, arg in enumerate(args):
            if hide_next:
                out[i], hide_next = ARGV_MASK, False
                continue
            if "=" not in arg and not arg.startswith("-"):
                continue  # a bare word is never masked (hot path: most argv)
            name, sep, _ = arg.partition("=")
            key = name.lstrip("-").replace("-", "_")
            if not key or not self.secret(key):
                continue
            if sep:
                out[i] = f"{name}={ARGV_MASK}"
            elif arg.startswith("-"):
                hide_next = True
        return tuple(out)

    def var(self, name: str, value: str) -> EnvVar:
        """The variable as shown: a secret's value is "" unless reveal is on."""
        if not self.reveal and self.secret(name):
            return EnvVar(name, "", True)
        return EnvVar(name, value, False)


def environment(dfd: int, redactor: Redactor) -> tuple[tuple[EnvVar, ...], list[Unavailable]]:
    """The process's environment (names always, secret values redacted)."""
    try:
        raw = read_all_at(dfd, "environ", ENV_MAX)
    except (PermissionError, FileNotFoundError, ProcessLookupError) as e:
        return (), [Unavailable("env", _why(e))]
    out = []
    for item in raw.split(b"\0"):
        if not item:
            continue
        name, sep, value = item.partition(b"=")
        out.append(redactor.var(text(name), text(value) if sep else ""))
    missing = []
    if len(raw) >= ENV_MAX:
        missing.append(Unavailable("env", f"truncated at {ENV_MAX} bytes"))
    return tuple(out), missing


def limits(dfd: int) -> tuple[tuple[Limit, ...], list[Unavailable]]:
    """Parse /proc/PID/limits (fixed-width columns, the name contains spaces)."""
    try:
        raw = text(read_at(dfd, "limits", 8192))
    except (PermissionError, FileNotFoundError, ProcessLookupError) as e:
        return (), [Unavailable("limits", _why(e))]
    lines = raw.splitlines()
    if not lines:
        return (), [Unavailable("limits", "empty /proc/PID/limits")]
    header = lines[0]
    soft_at, hard_at, units_at = (
        header.index("Soft Limit"),
        header.index("Hard Limit"),
        header.index("Units"),
    )
    out = []
    for line in lines[1:]:
        out.append(
            Limit(
                name=line[:soft_at].strip(),
                soft=line[soft_at:hard_at].strip(),
                hard=line[hard_at:units_at].strip(),
                units=line[units_at:].strip(),
            )
        )
    return tuple(out), []


def flag_names(flags: int) -> str:
    """Octal open flags from fdinfo -> ``O_WRONLY|O_APPEND|O_CLOEXEC``."""
    names = [_ACCESS.get(flags & 3, f"access={flags & 3}")]
    names += [n for bit, n in _FLAG_BITS if flags & bit == bit]
    if "O_SYNC" in names:
        names.remove("O_DSYNC")
    return "|".join(names)


def _fd_type(path: str, flags: int) -> str:
    for prefix, kind in (("socket:", "socket"), ("pipe:", "pipe"), ("anon_inode:", "anon")):
        if path.startswith(prefix):
            return kind
    if path.startswith("/dev/"):
        return "device"
    return "dir" if flags & 0o200000 else "file"  # O_DIRECTORY: opendir(3) sets it


def open_files(dfd: int) -> tuple[tuple[OpenFile, ...], list[Unavailable]]:
    """Open fds with target path, flags and position (first ``MAX_FDS`` by number)."""
    try:
        fdir = os.open("fd", _O_DIR, dir_fd=dfd)
    except (PermissionError, FileNotFoundError, ProcessLookupError) as e:
        return (), [Unavailable("open_files", _why(e))]
    try:
        try:
            names = sorted(int(n) for n in os.listdir(fdir))
        except (PermissionError, FileNotFoundError, ProcessLookupError) as e:
            return (), [Unavailable("open_files", _why(e))]
        missing = []
        if len(names) > MAX_FDS:
            missing.append(Unavailable("open_files", f"{len(names)} open; first {MAX_FDS} listed"))
        out: list[OpenFile] = []
        for n in names[:MAX_FDS]:
            try:
                path = text(os.fsencode(os.readlink(str(n), dir_fd=fdir)))
                info = read_at(dfd, f"fdinfo/{n}", 4096)
            except (FileNotFoundError, ProcessLookupError):
                continue  # closed while we looked: not an error
            except PermissionError as e:
                return tuple(out), [Unavailable("open_files", _why(e))]
            pos, flags = 0, 0
            for line in info.splitlines()[:3]:
                if line.startswith(b"pos:"):
                    pos = int(line.split()[1])
                elif line.startswith(b"flags:"):
                    flags = int(line.split()[1], 8)
            out.append(OpenFile(n, path, flag_names(flags), pos, _fd_type(path, flags)))
        return tuple(out), missing
    finally:
        os.close(fdir)


def _task_ticks(tdir: int) -> dict[int, tuple[str, str, int, int]]:
    """tid -> (name, state letter, utime, stime) for every thread."""
    out: dict[int, tuple[str, str, int, int]] = {}
    for name in os.listdir(tdir)[:MAX_THREADS]:
        try:
            comm, f = parse_stat(read_at(tdir, f"{name}/stat", 2048))
        except (FileNotFoundError, ProcessLookupError):
            continue  # the thread exited meanwhile
        out[int(name)] = (comm, f[0].decode(), int(f[11]), int(f[12]))
    return out


def threads(dfd: int) -> tuple[tuple[ThreadInfo, ...], list[Unavailable]]:
    """Threads with cpu % over a short window (two samples THREAD_WINDOW_S apart)."""
    try:
        tdir = os.open("task", _O_DIR, dir_fd=dfd)
    except (PermissionError, FileNotFoundError, ProcessLookupError) as e:
        return (), [Unavailable("threads", _why(e))]
    try:
        t0 = time.monotonic()
        before = _task_ticks(tdir)
        time.sleep(THREAD_WINDOW_S)
        after = _task_ticks(tdir)
        window = time.monotonic() - t0
    except (FileNotFoundError, ProcessLookupError) as e:
        return (), [Unavailable("threads", _why(e))]
    finally:
        os.close(tdir)
    out: list[ThreadInfo] = []
    for tid in sorted(after):
        name, state, ut, st = after[tid]
        prev = before.get(tid)
        cpu = None if prev is None else (ut + st - prev[2] - prev[3]) / CLK_TCK / window * 100
        out.append(ThreadInfo(tid, name, STATES.get(state, state), cpu, ut / CLK_TCK, st / CLK_TCK))
    missing = []
    if any(t.cpu_percent is None for t in out):
        missing.append(Unavailable("threads.cpu_percent", "thread started during the sample"))
    return tuple(out), missing
