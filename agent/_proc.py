"""Process listings and single-process reads, with cpu rates between samples.

cpu % is a rate: the cpu ticks a process used between two samples divided by
the time between them (CLOCK_BOOTTIME, the clock /proc's start times use).
The reader keeps the last few listings' tick counts; a listing is compared
with the newest earlier one at least ``MIN_WINDOW_S`` old. The first listing
has nothing to compare with, so it takes a short sample first.
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager

from agent._common import CLK_TCK, PAGE_SIZE, PROC, boot_time, parse_stat, read_bytes, text
from agent._pod import Pod
from agent._proc_scan import (
    OPTIONAL_FIELDS,
    PTRACE_HINT,
    STATES,
    RawProc,
    Vanished,
    open_pid,
    read_at,
    read_proc,
    scan,
)
from agent._proc_users import Users
from agent.errors import InvalidArgument, NotFound, ProcessRestarted
from agent.results.pod import Container, ProcessRef, Unavailable
from agent.results.proc import IoCounters, ProcessInfo, ProcessList

MIN_WINDOW_S = 0.05
FIRST_WINDOW_S = 0.1
MAX_WINDOW_S = 5.0
HISTORY = 4
MAX_PAGE = 10_000
SORTS = ("pid", "cpu", "rss", "fds", "threads")
_Key = tuple[int, int]


def now_boottime() -> float:
    """Seconds since boot on the clock /proc start times are measured with."""
    return time.clock_gettime(time.CLOCK_BOOTTIME)


def cpu_snapshot(proc: str) -> dict[_Key, int]:
    """(pid, start_ticks) -> utime+stime ticks of every process (stat only)."""
    out: dict[_Key, int] = {}
    for name in os.listdir(proc):
        if not name.isdigit():
            continue
        try:
            _, f = parse_stat(read_bytes(f"{proc}/{name}/stat", 2048))
        except (FileNotFoundError, ProcessLookupError):
            continue
        out[(int(name), int(f[19]))] = int(f[11]) + int(f[12])
    return out


class CpuTracker:
    """Recent tick counts, so each listing's cpu % is a rate since an earlier one."""

    def __init__(self) -> None:
        self._history: deque[tuple[float, dict[_Key, int]]] = deque(maxlen=HISTORY)
        self._lock = threading.Lock()

    def base(self, now: float) -> tuple[float, dict[_Key, int]] | None:
        """The newest sample at least MIN_WINDOW_S older than ``now``."""
        with self._lock:
            for t, snap in reversed(self._history):
                if now - t >= MIN_WINDOW_S:
                    return t, snap
        return None

    def newest(self) -> tuple[float, dict[_Key, int]] | None:
        """The latest sample, however young."""
        with self._lock:
            return self._history[-1] if self._history else None

    def record(self, t: float, snap: dict[_Key, int]) -> None:
        with self._lock:
            self._history.append((t, snap))


def rate(
    ticks: int, start_ticks: int, now: float, base: tuple[float, dict[_Key, int]], key: _Key
) -> float | None:
    """cpu % of one core since the base sample (or since start, if it started later)."""
    t0, snap = base
    before = snap.get(key)
    if before is not None:
        return max(ticks - before, 0) / CLK_TCK / (now - t0) * 100.0
    started = start_ticks / CLK_TCK
    if started >= t0:
        return ticks / CLK_TCK / max(now - started, 1.0 / CLK_TCK) * 100.0
    return None  # alive at the base sample but not seen in it


def parse_want(fields: Collection[str], cheap: bool) -> tuple[str, ...]:
    """Optional fields to read: ``fields`` if given, else all (none when cheap).

    Raises:
        InvalidArgument: an unknown field name.
    """
    if fields:
        bad = sorted(set(fields) - set(OPTIONAL_FIELDS))
        if bad:
            raise InvalidArgument(
                f"unknown process field(s) {', '.join(bad)}; known: {', '.join(OPTIONAL_FIELDS)}"
            )
        return tuple(fields)
    return () if cheap else OPTIONAL_FIELDS


class ProcessReader:
    """Lists and reads the pod's processes; one per sidecar (holds cpu history).

    Args:
        pod: the pod view (for container ids).
        proc: the procfs mount.
    """

    def __init__(self, pod: Pod, proc: str = PROC) -> None:
        self.pod = pod
        self.proc = proc
        self.cpu = CpuTracker()
        self.users = Users()
        self.boot = boot_time()

    want = staticmethod(parse_want)

    def list(
        self,
        *,
        container: str = "",
        sort: str = "pid",
        descending: bool = False,
        page_token: str = "",
        limit: int = 0,
        cpu_window_ms: int = 0,
        want: Collection[str] = OPTIONAL_FIELDS,
    ) -> ProcessList:
        """The pod's processes (one container's when ``container`` is set).

        Args:
            container: container id or name; "" = every container.
            sort: one of ``SORTS``.
            page_token: where the page starts ("" = the first); see ``page_start``.
            limit: page size (0 = up to ``MAX_PAGE``).
            cpu_window_ms: sample cpu over this window now (0 = since the last listing).
            want: optional per-process fields (see ``OPTIONAL_FIELDS``).

        Raises:
            InvalidArgument: unknown sort or a malformed page token.
            NotFound: unknown container.
        """
        if sort not in SORTS:
            raise InvalidArgument(f"unknown sort {sort!r}; known: {', '.join(SORTS)}")
        base = None if cpu_window_ms else self.cpu.base(now_boottime())
        if base is None and not cpu_window_ms and (newest := self.cpu.newest()) is not None:
            # The last listing was moments ago: let the window grow to MIN_WINDOW_S.
            time.sleep(max(0.0, MIN_WINDOW_S - (now_boottime() - newest[0])))
            base = newest
        if base is None:
            window = min(cpu_window_ms / 1000.0, MAX_WINDOW_S) or FIRST_WINDOW_S
            base = (now_boottime(), cpu_snapshot(self.proc))
            time.sleep(window)
        raws = scan(self.proc, want)
        now = now_boottime()
        snap = {(p.pid, p.start_ticks): p.utime + p.stime for p in raws}
        self.cpu.record(now, snap)
        containers = self.pod.group(raws)
        owner = {pid: c.id for c in containers for pid in c.pids}
        passwd = {
            c.id: self.users.table(c.root_path if c.root_accessible else None) for c in containers
        }
        if container:
            keep = set(Pod.find(containers, container).pids)
            raws = [p for p in raws if p.pid in keep]
        rates = {
            p.pid: rate(p.utime + p.stime, p.start_ticks, now, base, (p.pid, p.start_ticks))
            for p in raws
        }
        raws = _sorted(raws, sort, descending, rates)
        total = len(raws)
        size = min(limit or MAX_PAGE, MAX_PAGE)
        start = page_start(raws, page_token, descending)
        page = raws[start : start + size]
        end = start + len(page)
        infos = tuple(
            self._info(p, rates[p.pid], owner.get(p.pid, ""), passwd=passwd) for p in page
        )
        return ProcessList(
            processes=infos,
            sampled_at=self.boot + now,
            total=total,
            next_token=continuation(infos, start, sort) if end < total else "",
            truncated=limit == 0 and end < total,
            start=start,
            keyset=sort == "pid",
        )

    def _info(
        self,
        p: RawProc,
        cpu: float | None,
        container_id: str,
        pss: int | None = None,
        passwd: dict[str, dict[int, str]] | None = None,
    ) -> ProcessInfo:
        names = passwd.get(container_id) if passwd is not None else None
        user = (names or {}).get(p.uid) or self.users.own(p.uid)
        if cpu is None:
            p.unavailable.append(Unavailable("cpu_percent", "no earlier sample of this process"))
        io = IoCounters(p.io[4], p.io[5], p.io[0], p.io[1], p.io[2], p.io[3]) if p.io else None
        return ProcessInfo(
            ref=ProcessRef(p.pid, p.start_ticks),
            ppid=p.ppid,
            name=p.comm,
            state=STATES.get(p.state, p.state),
            uid=p.uid,
            user=user,
            start_time=self.boot + p.start_ticks / CLK_TCK,
            cpu_percent=cpu,
            cpu_user=p.utime / CLK_TCK,
            cpu_system=p.stime / CLK_TCK,
            rss=p.rss_pages * PAGE_SIZE,
            vms=p.vsize,
            threads=p.threads,
            nice=p.nice,
            cmdline=p.cmdline,
            container_id=container_id,
            fds=p.fds,
            pss=pss,
            exe=p.exe,
            cwd=p.cwd,
            io=io,
            ctx_voluntary=p.ctx[0] if p.ctx else None,
            ctx_involuntary=p.ctx[1] if p.ctx else None,
            unavailable=tuple(p.unavailable) if p.unavailable else (),
        )

    @contextmanager
    def opened(self, ref: ProcessRef) -> Iterator[tuple[int, RawProc]]:
        """Open ``/proc/PID`` for ``ref`` and check its identity.

        Everything read through the yielded directory fd belongs to that
        process even if the pid is reused meanwhile (reads then fail).

        Raises:
            InvalidArgument: pid <= 0.
            NotFound: no such process (or a kernel thread).
            ProcessRestarted: the pid now belongs to a process with another start time.
        """
        if ref.pid <= 0:
            raise InvalidArgument(f"invalid pid {ref.pid}")
        try:
            dfd = open_pid(self.proc, ref.pid)
        except Vanished:
            raise NotFound(f"no process {ref.pid} (it exited)") from None
        try:
            try:
                raw = read_proc(dfd, ref.pid, OPTIONAL_FIELDS)
            except Vanished:
                raise NotFound(f"no process {ref.pid} (it exited)") from None
            if raw is None:
                raise NotFound(f"pid {ref.pid} is a kernel thread, not part of the pod")
            check_identity(ref, raw)
            yield dfd, raw
        finally:
            os.close(dfd)

    def info(
        self, dfd: int, raw: RawProc, container: Container | None, cpu: float | None
    ) -> ProcessInfo:
        """Full fields of one opened process, with pss (``cpu`` from ``cpu_of``)."""
        pss = None
        try:
            for line in read_at(dfd, "smaps_rollup", 8192).splitlines():
                if line.startswith(b"Pss:"):
                    pss = int(line.split()[1]) * 1024
                    break
        except PermissionError:
            raw.unavailable.append(Unavailable("pss", PTRACE_HINT))
        except (FileNotFoundError, ProcessLookupError) as e:
            raw.unavailable.append(Unavailable("pss", e.strerror or "process exited"))
        if container is None:
            return self._info(raw, cpu, "", pss)
        root = container.root_path if container.root_accessible else None
        return self._info(raw, cpu, container.id, pss, {container.id: self.users.table(root)})

    def cpu_of(
        self, raw: RawProc, since: float, min_window: float = FIRST_WINDOW_S
    ) -> float | None:
        """cpu % of one process: against the last listing that saw it, else since ``since``.

        ``raw`` was read at boottime ``since``; when no listing saw the process,
        the window from then is topped up to ``min_window`` (callers do other
        work first, so usually nothing is left to wait).
        """
        key = (raw.pid, raw.start_ticks)
        base = self.cpu.base(now_boottime())
        if base is None or key not in base[1]:
            time.sleep(max(0.0, min_window - (now_boottime() - since)))
            base = (since, {key: raw.utime + raw.stime})
        try:
            _, f = parse_stat(read_bytes(f"{self.proc}/{raw.pid}/stat", 2048))
        except (FileNotFoundError, ProcessLookupError):
            return None
        if int(f[19]) != raw.start_ticks:
            return None
        return rate(int(f[11]) + int(f[12]), raw.start_ticks, now_boottime(), base, key)


def page_start(raws: Sequence[RawProc], token: str, descending: bool) -> int:
    """Index where a page starts.

    Tokens: ``p<pid>`` (pid order: the page starts after that pid, so processes
    that come and go between pages never shift it) or ``<offset>`` (other
    orders, whose values change between calls anyway).

    Raises:
        InvalidArgument: a token this server did not make.
    """
    if not token:
        return 0
    if token.startswith("p") and token[1:].isdigit():
        after = int(token[1:])
        for i, p in enumerate(raws):
            if (p.pid < after) if descending else (p.pid > after):
                return i
        return len(raws)
    if token.isdigit():
        return int(token)
    raise InvalidArgument(f"invalid page_token {token!r}: pass back next_page_token as-is")


def continuation(page: Sequence[ProcessInfo], start: int, sort: str) -> str:
    """The token for the page after ``page`` (which began at ``start``)."""
    if sort == "pid" and page:
        return f"p{page[-1].ref.pid}"
    return str(start + len(page))


def check_identity(ref: ProcessRef, raw: RawProc) -> None:
    """Raise ProcessRestarted when ``raw`` is not the process ``ref`` names."""
    if ref.start_ticks and raw.start_ticks != ref.start_ticks:
        raise ProcessRestarted(
            f"process restarted: pid {ref.pid} started at tick {ref.start_ticks}, but that pid "
            f"now belongs to {text(raw.comm.encode())!r} started at tick {raw.start_ticks}; "
            "refresh the process list"
        )


def _sorted(
    raws: Sequence[RawProc], sort: str, descending: bool, rates: dict[int, float | None]
) -> list[RawProc]:
    """Sort raw processes; unknown values (None) always go last."""
    if sort == "pid":
        return sorted(raws, key=lambda p: p.pid, reverse=descending)
    key: dict[int, float | None]
    if sort == "cpu":
        key = {p.pid: rates[p.pid] for p in raws}
    elif sort == "rss":
        key = {p.pid: float(p.rss_pages) for p in raws}
    elif sort == "fds":
        key = {p.pid: None if p.fds is None else float(p.fds) for p in raws}
    else:
        key = {p.pid: float(p.threads) for p in raws}
    known = sorted(
        (p for p in raws if key[p.pid] is not None),
        key=lambda p: (key[p.pid], -p.pid if descending else p.pid),
        reverse=descending,
    )
    return known + [p for p in raws if key[p.pid] is None]
