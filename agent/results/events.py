"""Results of the flight recorder: events and per-container samples."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from agent.results.pod import ProcessRef


class EventKind(enum.IntEnum):
    """What happened; the values match ``borescope.v1.EventKind``."""

    UNSPECIFIED = 0
    PROCESS_STARTED = 1
    PROCESS_EXITED = 2
    CONTAINER_RESTARTED = 3
    OOM_KILL = 4
    CPU_THROTTLED = 5
    RSS_JUMP = 6
    FD_JUMP = 7
    PORT_OPENED = 8
    PORT_CLOSED = 9
    ERROR_BURST = 10
    RECORDER_STARTED = 11
    RECORDER_GAP = 12


class Severity(enum.IntEnum):
    """How much it matters; the values match ``borescope.v1.Severity``."""

    INFO = 0
    WARNING = 1
    CRITICAL = 2


@dataclass(frozen=True, slots=True)
class Event:
    """One recorder event.

    Attributes:
        seq: monotonically increasing for the sidecar's life (the cursor).
        time: epoch seconds.
        attrs: extra facts as text (e.g. ``port``, ``signal``, ``count``).
        exit_code: the exit status when known (a signal death is 128 + signal,
            as a shell reports it; ``attrs["signal"]`` names it).
    """

    seq: int
    time: float
    kind: EventKind
    severity: Severity
    container_id: str
    message: str
    process: ProcessRef | None = None
    attrs: dict[str, str] = field(default_factory=dict)
    exit_code: int | None = None


@dataclass(frozen=True, slots=True)
class ContainerSample:
    """One sample of a container's resources.

    Attributes:
        cpu_percent: percent of one core since the previous sample.
        memory_cgroup_bytes: the cgroup's memory usage, None when unreadable.
    """

    time: float
    container_id: str
    cpu_percent: float
    rss_bytes: int
    processes: int
    fds: int
    memory_cgroup_bytes: int | None = None
