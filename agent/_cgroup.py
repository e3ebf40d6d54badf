"""Memory, CPU and pids figures of a process's cgroup, v1 or v2.

Where the files are: /proc/self/mountinfo lists the cgroup mounts the
sidecar sees (v1: one per controller set; v2: one ``cgroup2``), each with the
cgroup it shows as its root. A process's path in /proc/PID/cgroup is relative
to the sidecar's cgroup namespace; the file directory is the mount point plus
that path minus the mount's root. When the memory controller is mounted as
v1 the figures come from v1 (hybrid hosts keep the controllers there).
"""

from __future__ import annotations

from dataclasses import dataclass

from agent._common import PROC, read_bytes, text
from agent.results.pod import Unavailable
from agent.results.proc import CgroupStats

UNLIMITED_V1 = 1 << 62  # v1 reports "no limit" as PAGE_COUNTER_MAX pages; anything this big


@dataclass(frozen=True, slots=True)
class Mount:
    """One cgroup mount: the cgroup it shows as root, where, and its controllers."""

    root: str
    point: str
    version: int
    controllers: frozenset[str]


def _unescape(field: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as octal.
    return (
        field.replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
    )


def mounts(proc: str = PROC) -> list[Mount]:
    """The cgroup mounts in the sidecar's mount namespace."""
    out = []
    with open(f"{proc}/self/mountinfo", encoding="utf-8", errors="replace") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            parts, rparts = left.split(), right.split()
            if len(parts) < 5 or len(rparts) < 3:
                continue
            fstype = rparts[0]
            if fstype == "cgroup2":
                out.append(Mount(_unescape(parts[3]), _unescape(parts[4]), 2, frozenset()))
            elif fstype == "cgroup":
                opts = frozenset(rparts[2].split(","))
                out.append(Mount(_unescape(parts[3]), _unescape(parts[4]), 1, opts))
    return out


def memberships(proc: str, pid: int | str) -> dict[str, str]:
    """controller -> cgroup path for ``pid`` ("" key = the v2 unified hierarchy)."""
    out: dict[str, str] = {}
    for line in text(read_bytes(f"{proc}/{pid}/cgroup", 65536)).splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        if parts[0] == "0" and parts[1] == "":
            out[""] = parts[2]
        else:
            for c in parts[1].split(","):
                out[c] = parts[2]
    return out


def _dir(mount: Mount, path: str) -> str | None:
    root = mount.root.rstrip("/")
    if root and not (path == root or path.startswith(root + "/")):
        return None  # the process's cgroup is outside what this mount shows
    return mount.point + path[len(root) :]


class _Reader:
    """Collects figures and the reasons for the ones that could not be read."""

    def __init__(self) -> None:
        self.missing: list[Unavailable] = []

    def raw(self, directory: str | None, name: str, field: str) -> str | None:
        if directory is None:
            self.missing.append(Unavailable(field, "cgroup not visible from the sidecar's mounts"))
            return None
        try:
            return text(read_bytes(f"{directory}/{name}", 65536)).strip()
        except FileNotFoundError:
            self.missing.append(Unavailable(field, f"no {name} (controller not enabled here)"))
        except PermissionError:
            self.missing.append(Unavailable(field, f"{name}: permission denied"))
        return None

    def number(self, directory: str | None, name: str, field: str) -> int | None:
        value = self.raw(directory, name, field)
        return None if value is None or value == "max" else int(value)

    def keyed(self, directory: str | None, name: str, field: str) -> dict[str, int]:
        value = self.raw(directory, name, field)
        if value is None:
            return {}
        out = {}
        for line in value.splitlines():
            k, _, v = line.partition(" ")
            if v.strip().lstrip("-").isdigit():
                out[k] = int(v)
        return out

    def pick(self, table: dict[str, int], key: str, field: str, source: str) -> int | None:
        if not table:
            return None  # the file itself was unreadable: already noted
        if key not in table:
            self.missing.append(Unavailable(field, f"{source} has no {key} (older kernel?)"))
            return None
        return table[key]


def stats(pid: int | str, proc: str = PROC) -> CgroupStats:
    """The cgroup figures of ``pid``.

    Raises:
        FileNotFoundError / ProcessLookupError: the process exited.
    """
    member = memberships(proc, pid)
    all_mounts = mounts(proc)
    v1 = {c: m for m in all_mounts if m.version == 1 for c in m.controllers}
    v2 = next((m for m in all_mounts if m.version == 2), None)
    if "memory" in v1 and "memory" in member:
        return _v1(member, v1)
    if v2 is not None and "" in member:
        return _v2(member[""], v2)
    return CgroupStats(
        version=0,
        path=member.get("", ""),
        unavailable=(Unavailable("cgroup", "no cgroup filesystem is mounted in the sidecar"),),
    )


def _v1(member: dict[str, str], mounts_by: dict[str, Mount]) -> CgroupStats:
    r = _Reader()

    def where(controller: str) -> str | None:
        if controller not in mounts_by or controller not in member:
            return None
        return _dir(mounts_by[controller], member[controller])

    mem, cpu, pids = where("memory"), where("cpu"), where("pids")
    limit = r.number(mem, "memory.limit_in_bytes", "memory_limit")
    oom = r.keyed(mem, "memory.oom_control", "oom_kills")
    cpu_stat = r.keyed(cpu, "cpu.stat", "throttling")
    throttled_ns = r.pick(cpu_stat, "throttled_time", "throttled_usec", "cpu.stat")
    r.missing.append(Unavailable("oom_events", "cgroup v1 counts OOM kills only"))
    return CgroupStats(
        version=1,
        path=member["memory"],
        memory_limit=None if limit is None or limit >= UNLIMITED_V1 else limit,
        memory_usage=r.number(mem, "memory.usage_in_bytes", "memory_usage"),
        memory_peak=r.number(mem, "memory.max_usage_in_bytes", "memory_peak"),
        oom_kills=r.pick(oom, "oom_kill", "oom_kills", "memory.oom_control"),
        cpu_quota_us=r.number(cpu, "cpu.cfs_quota_us", "cpu_quota"),
        cpu_period_us=r.number(cpu, "cpu.cfs_period_us", "cpu_period"),
        nr_periods=r.pick(cpu_stat, "nr_periods", "nr_periods", "cpu.stat"),
        nr_throttled=r.pick(cpu_stat, "nr_throttled", "nr_throttled", "cpu.stat"),
        throttled_usec=None if throttled_ns is None else throttled_ns // 1000,
        pids_current=r.number(pids, "pids.current", "pids_current"),
        pids_max=r.number(pids, "pids.max", "pids_max"),
        unavailable=tuple(r.missing),
    )


def _v2(path: str, mount: Mount) -> CgroupStats:
    r = _Reader()
    d = _dir(mount, path)
    if d is not None and path in ("", "/"):
        return CgroupStats(
            version=2,
            path=path,
            unavailable=(Unavailable("cgroup", "process is in the root cgroup: no limits apply"),),
        )
    limit = r.raw(d, "memory.max", "memory_limit")
    events = r.keyed(d, "memory.events", "oom_kills")
    cpu_max = r.raw(d, "cpu.max", "cpu_quota")
    quota, period = None, None
    if cpu_max is not None:
        q, _, p = cpu_max.partition(" ")
        quota, period = (-1 if q == "max" else int(q)), int(p or 0) or None
    cpu_stat = r.keyed(d, "cpu.stat", "throttling")
    return CgroupStats(
        version=2,
        path=path,
        memory_limit=None if limit in (None, "max") else int(limit),
        memory_usage=r.number(d, "memory.current", "memory_usage"),
        memory_peak=r.number(d, "memory.peak", "memory_peak"),
        oom_kills=r.pick(events, "oom_kill", "oom_kills", "memory.events"),
        oom_events=r.pick(events, "oom", "oom_events", "memory.events"),
        cpu_quota_us=quota,
        cpu_period_us=period,
        nr_periods=r.pick(cpu_stat, "nr_periods", "nr_periods", "cpu.stat"),
        nr_throttled=r.pick(cpu_stat, "nr_throttled", "nr_throttled", "cpu.stat"),
        throttled_usec=r.pick(cpu_stat, "throttled_usec", "throttled_usec", "cpu.stat"),
        pids_current=r.number(d, "pids.current", "pids_current"),
        pids_max=r.number(d, "pids.max", "pids_max"),
        unavailable=tuple(r.missing),
    )
