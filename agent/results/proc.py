"""Results about processes: listings, details, cgroup figures, signals, samples.

A field the agent could not read is ``None`` and named, with the reason, in the
result's ``unavailable`` tuple; it is never a silent zero.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from agent.results.net import Socket
from agent.results.pod import ProcessRef, Unavailable


@dataclass(frozen=True, slots=True)
class IoCounters:
    """/proc/PID/io: bytes that hit storage and bytes passed to read/write."""

    read_bytes: int
    write_bytes: int
    read_chars: int
    write_chars: int
    syscalls_read: int
    syscalls_write: int


@dataclass(frozen=True, slots=True)
class ProcessInfo:
    """One process with the fields a listing shows.

    Attributes:
        state: kernel state letter plus a word, e.g. ``"S (sleeping)"``.
        start_time: epoch seconds.
        cpu_percent: percent of one core between two samples (not since start).
        cpu_user / cpu_system: cumulative seconds.
        container_id: id of the container the process belongs to ("" = none).
    """

    ref: ProcessRef
    ppid: int
    name: str
    state: str
    uid: int
    user: str
    start_time: float
    cpu_percent: float | None
    cpu_user: float
    cpu_system: float
    rss: int | None
    vms: int
    threads: int
    nice: int
    cmdline: tuple[str, ...]
    container_id: str = ""
    fds: int | None = None
    pss: int | None = None
    exe: str | None = None
    cwd: str | None = None
    io: IoCounters | None = None
    ctx_voluntary: int | None = None
    ctx_involuntary: int | None = None
    unavailable: tuple[Unavailable, ...] = ()


@dataclass(frozen=True, slots=True)
class ProcessList:
    """A listing: processes (already filtered, sorted and paged) and paging facts."""

    processes: tuple[ProcessInfo, ...]
    sampled_at: float
    total: int
    next_token: str  # "" = last page
    truncated: bool
    start: int = 0  # index of the first process in the whole sorted listing
    keyset: bool = False  # pid order: tokens name the last pid, not an offset

    def token_after(self, count: int) -> str:
        """The page token that continues after the first ``count`` processes of this page."""
        if count >= len(self.processes):
            return self.next_token
        if self.keyset and count:
            return f"p{self.processes[count - 1].ref.pid}"
        return str(self.start + count)


@dataclass(frozen=True, slots=True)
class EnvVar:
    """One environment variable; ``value`` is "" when redacted."""

    name: str
    value: str
    redacted: bool


@dataclass(frozen=True, slots=True)
class Limit:
    """One line of /proc/PID/limits."""

    name: str
    soft: str
    hard: str
    units: str


@dataclass(frozen=True, slots=True)
class CgroupStats:
    """Memory, CPU and pids figures of a process's cgroup (v1 or v2).

    ``cpu_quota_us`` is -1 when there is no quota; ``memory_limit`` is None
    when unlimited (and not listed in ``unavailable`` then).
    """

    version: int
    path: str
    memory_limit: int | None = None
    memory_usage: int | None = None
    memory_peak: int | None = None
    oom_kills: int | None = None
    oom_events: int | None = None
    cpu_quota_us: int | None = None
    cpu_period_us: int | None = None
    nr_periods: int | None = None
    nr_throttled: int | None = None
    throttled_usec: int | None = None
    pids_current: int | None = None
    pids_max: int | None = None
    unavailable: tuple[Unavailable, ...] = ()


@dataclass(frozen=True, slots=True)
class OpenFile:
    """One open file descriptor."""

    fd: int
    path: str
    flags: str
    position: int
    type: str


@dataclass(frozen=True, slots=True)
class ThreadInfo:
    """One thread of a process."""

    tid: int
    name: str
    state: str
    cpu_percent: float | None
    cpu_user: float
    cpu_system: float


@dataclass(frozen=True, slots=True)
class ProcessDetail:
    """Everything about one process; sections not asked for stay empty/None."""

    process: ProcessInfo
    env: tuple[EnvVar, ...] = ()
    limits: tuple[Limit, ...] = ()
    cgroup: CgroupStats | None = None
    open_files: tuple[OpenFile, ...] = ()
    threads: tuple[ThreadInfo, ...] = ()
    sockets: tuple[Socket, ...] = ()
    children: tuple[int, ...] = ()
    unavailable: tuple[Unavailable, ...] = field(default=())


@dataclass(frozen=True, slots=True)
class SignalResult:
    """What happened when a signal was sent."""

    delivered: bool
    method: str  # "pidfd_send_signal" or "kill"
    signal: str  # canonical name, e.g. "SIGTERM"


@dataclass(frozen=True, slots=True)
class ProcessSample:
    """One sample of a watched process, for sparklines."""

    time: float
    cpu_percent: float | None
    rss: int | None
    fds: int | None
    threads: int
