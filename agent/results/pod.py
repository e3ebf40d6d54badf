"""Results about the pod itself: identities and containers."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class ProcessRef:
    """A process identity: (pid, start time in clock ticks after boot).

    A pid alone is reused; the pair is not.
    """

    pid: int
    start_ticks: int


@dataclass(frozen=True, slots=True)
class Unavailable:
    """A field that could not be read, and why."""

    field: str
    reason: str


class ContainerKind(enum.IntEnum):
    """What a group of processes is, from borescope's point of view."""

    UNSPECIFIED = 0
    APP = 1
    SIDECAR = 2
    INFRA = 3


@dataclass(frozen=True, slots=True)
class Container:
    """Processes of the pod that share one mount namespace (and cgroup).

    Attributes:
        id: ``mnt-<inode>``; stable for the container's life (a restarted
            container gets a new mount namespace, hence a new id).
        name: from config, else the cgroup's last component, else the root
            process's comm.
        root: the container's first process (lowest start time whose parent
            is outside the group); its ``/proc/<pid>/root`` is the container's
            filesystem.
    """

    id: str
    name: str
    kind: ContainerKind
    mnt_ns: int
    cgroup: str
    root: ProcessRef
    pids: tuple[int, ...]
    started: float  # epoch seconds
    root_accessible: bool
    unavailable: tuple[Unavailable, ...] = field(default=())
    restarts: int = 0  # times the root process changed while the agent watched

    @property
    def root_path(self) -> str:
        """Path of the container's filesystem as the sidecar sees it."""
        return f"/proc/{self.root.pid}/root"
