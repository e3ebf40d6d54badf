"""Per-container cgroups for the sandbox pod, as a container runtime makes them.

Each container gets a cgroup named after it under one per-sandbox parent
(``<our cgroup>/borescope-sandbox-XXXX/<name>``), with a memory limit and a
CPU quota where the controller can be used: the agent then names the
container from its cgroup, reads its limits and usage, and the app can be
OOM-killed for real. cgroup v1 (one dir per controller hierarchy) and v2 (one
unified dir; limits only when our parent delegates the controllers) are both
handled; anything that cannot be created is skipped, never fatal: the sandbox
still runs, only without limits (``Cgroup.limits`` says which apply).
"""

from __future__ import annotations

import errno
import os
import time
from dataclasses import dataclass, field

V1_CONTROLLERS = ("memory", "cpu", "pids")
RMDIR_TIMEOUT_S = 5.0


def _own_paths() -> dict[str, str]:
    """Our cgroup path per v1 controller, and under "" the v2 path."""
    out: dict[str, str] = {}
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            for c in controllers.split(",") if controllers else [""]:
                out[c] = path
    return out


def _mounts() -> dict[str, str]:
    """Mount point per v1 controller, and under "" the cgroup2 mount."""
    out: dict[str, str] = {}
    with open("/proc/self/mountinfo") as f:
        for line in f:
            pre, _, post = line.partition(" - ")
            fstype, _src, opts = post.split()[:3]
            point = pre.split()[4]
            if fstype == "cgroup2":
                out.setdefault("", point)
            elif fstype == "cgroup":
                for opt in opts.split(","):
                    if opt in V1_CONTROLLERS:
                        out.setdefault(opt, point)
    return out


def _write(path: str, value: str) -> bool:
    try:
        with open(path, "w") as f:
            f.write(value)
    except OSError:
        return False
    return True


@dataclass
class Cgroup:
    """One container's cgroup dirs (one per hierarchy) and the limits that took."""

    name: str
    dirs: list[str] = field(default_factory=list)
    parents: list[str] = field(default_factory=list)
    limits: list[str] = field(default_factory=list)

    def add(self, pid: int) -> None:
        """Move ``pid`` (in the caller's PID namespace, 0 = the caller) into every dir."""
        for d in self.dirs:
            _write(os.path.join(d, "cgroup.procs"), str(pid))


def _rmdir(d: str) -> None:
    """rmdir a cgroup once its processes are gone (dying ones take a moment)."""
    deadline = time.monotonic() + RMDIR_TIMEOUT_S
    while True:
        try:
            os.rmdir(d)
            return
        except FileNotFoundError:
            return
        except OSError as e:
            if e.errno != errno.EBUSY or time.monotonic() > deadline:
                return  # left behind: a cgroup with nothing in it
            time.sleep(0.05)


def remove_all(cgroups: list[Cgroup]) -> None:
    """Remove every container's cgroup, then their shared parents."""
    for cg in cgroups:
        for d in cg.dirs:
            _rmdir(d)
    for parent in dict.fromkeys(p for cg in cgroups for p in cg.parents):
        _rmdir(parent)


def create(group: str, name: str, memory_bytes: int = 0, cpu_cores: float = 0.0) -> Cgroup:
    """Make ``<our cgroup>/<group>/<name>`` in every hierarchy we may write to.

    Args:
        group: the per-sandbox parent's name (unique per sandbox).
        name: the container's name.
        memory_bytes: memory limit (0 = none).
        cpu_cores: CPU quota in cores (0 = none).
    """
    cg = Cgroup(name)
    try:
        own, mounts = _own_paths(), _mounts()
    except OSError:
        return cg
    v2_only = "" in mounts and not any(c in mounts for c in V1_CONTROLLERS)
    wanted = [""] if v2_only else [c for c in V1_CONTROLLERS if c in mounts and c in own]
    for ctl in wanted:
        parent = os.path.join(mounts[ctl] + own.get(ctl, "/").rstrip("/"), group)
        leaf = os.path.join(parent, name)
        try:
            os.makedirs(leaf, exist_ok=True)
        except OSError:
            continue  # not ours to write (a read-only or undelegated hierarchy)
        cg.dirs.append(leaf)
        if parent not in cg.parents:
            cg.parents.append(parent)
        if ctl == "":
            # v2: limits need the controllers enabled down to the leaf's parent.
            _write(os.path.join(parent, "cgroup.subtree_control"), "+memory +cpu +pids")
        _apply_limits(cg, ctl, leaf, memory_bytes, cpu_cores)
    return cg


def _apply_limits(cg: Cgroup, ctl: str, leaf: str, memory_bytes: int, cpu_cores: float) -> None:
    period = 100_000
    quota = int(cpu_cores * period)
    if memory_bytes and ctl in ("memory", ""):
        f = "memory.limit_in_bytes" if ctl else "memory.max"
        if _write(os.path.join(leaf, f), str(memory_bytes)):
            cg.limits.append("memory")
            if not ctl:
                _write(os.path.join(leaf, "memory.swap.max"), "0")  # so the limit bites
    if quota and ctl in ("cpu", ""):
        ok = (
            _write(os.path.join(leaf, "cpu.max"), f"{quota} {period}")
            if not ctl
            else _write(os.path.join(leaf, "cpu.cfs_period_us"), str(period))
            and _write(os.path.join(leaf, "cpu.cfs_quota_us"), str(quota))
        )
        if ok:
            cg.limits.append("cpu")
