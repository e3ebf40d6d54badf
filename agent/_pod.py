"""Group the pod's processes into containers by mount namespace (and cgroup).

The pod shares one PID namespace, so /proc lists every process of every
container. Processes that share a mount namespace are one container; where
the namespace link is unreadable (no ptrace access) they are grouped by their
cgroup path instead, and a zombie (no namespaces left) joins its parent. The
sidecar's own container is the one holding ``self_pid``; the infra process is
pid 1 when it is alone in its namespace and named in ``INFRA_NAMES``
(Kubernetes' pause process).

Containers are tracked across calls by *slot* (kind + name + ordinal), so a
container whose root process changes (the app restarted: new mount
namespace, new pid) is counted as a restart of the same container.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from agent._common import CLK_TCK, PROC, boot_time, read_bytes
from agent._proc_scan import PTRACE_HINT, RawProc, scan
from agent.errors import AccessDenied, NotFound
from agent.results.pod import Container, ContainerKind, ProcessRef, Unavailable

# catatonit: podman's infra process (`podman kube play`, `podman pod create`).
INFRA_NAMES = frozenset({"pause", "borescope-pause", "infra", "catatonit"})
MAX_SLOTS = 256  # containers remembered for restart counting; oldest forgotten first
__all__ = ["INFRA_NAMES", "PTRACE_HINT", "Pod"]


@dataclass
class _Slot:
    root: ProcessRef
    restarts: int


def read_cgroup(proc: str, pid: int) -> str:
    """The most telling cgroup path of ``pid`` ("" when unreadable or gone)."""
    try:
        return cgroup_path(read_bytes(f"{proc}/{pid}/cgroup").decode("utf-8", "replace"))
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return ""


def cgroup_path(cgroup_file: str) -> str:
    """The most telling cgroup path: v2's unified line, else v1's memory line."""
    unified = ""
    memory = ""
    for line in cgroup_file.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        if parts[0] == "0" and parts[1] == "":
            unified = parts[2]
        elif "memory" in parts[1].split(","):
            memory = parts[2]
    return unified if unified not in ("", "/") else (memory or unified)


def name_from_cgroup(cgroup: str) -> str:
    """A readable container name from a cgroup path, or "" when it tells nothing."""
    last = cgroup.rstrip("/").rsplit("/", 1)[-1]
    if not last:
        return ""
    for prefix in ("cri-containerd-", "crio-", "docker-", "libpod-"):
        if last.startswith(prefix):
            last = last[len(prefix) :]
    last = last.removesuffix(".scope")
    return last[:12] if len(last) == 64 else last


def _tree(procs: Sequence[RawProc], root: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for p in procs:
        children.setdefault(p.ppid, []).append(p.pid)
    tree: set[int] = set()
    todo = [root]
    while todo:
        pid = todo.pop()
        if pid not in tree:
            tree.add(pid)
            todo.extend(children.get(pid, ()))
    return tree


class Pod:
    """The pod as seen from the sidecar: containers and their processes.

    Args:
        proc: the procfs mount (``/proc``).
        self_pid: the sidecar's own pid (defaults to this process).
        names: container names by container id (``mnt-<inode>``) or by
            root comm, from config.
        local_root: local mode (no namespaces): the process tree under this pid
            is the app container even though it shares the sidecar's mount
            namespace.
    """

    def __init__(
        self,
        proc: str = PROC,
        self_pid: int | None = None,
        names: Mapping[str, str] | None = None,
        local_root: int | None = None,
    ) -> None:
        self.local_root = local_root
        self.proc = proc
        self.self_pid = self_pid if self_pid is not None else os.getpid()
        self.names = dict(names or {})
        self._boot = boot_time()
        self._slots: dict[str, _Slot] = {}
        self._lock = threading.Lock()

    def containers(
        self, include_sidecar: bool = True, include_infra: bool = True
    ) -> list[Container]:
        """Every container in the pod, apps first, then the sidecar, then infra."""
        out = self.group(scan(self.proc, cmdline=False))
        return [
            c
            for c in out
            if (include_sidecar or c.kind is not ContainerKind.SIDECAR)
            and (include_infra or c.kind is not ContainerKind.INFRA)
        ]

    def _keys(self, procs: Sequence[RawProc]) -> dict[int, str]:
        """pid -> grouping key: mount namespace, else cgroup, else parent's key."""
        by_pid = {p.pid: p for p in procs}
        local = _tree(procs, self.local_root) if self.local_root is not None else set()
        keys: dict[int, str] = {}
        for p in procs:
            if p.pid in local:
                keys[p.pid] = f"local-{self.local_root}"
            elif p.mnt_ns is not None:
                keys[p.pid] = f"mnt-{p.mnt_ns}"
        for p in procs:
            if p.pid in keys:
                continue
            parent = by_pid.get(p.ppid)
            if p.state == "Z" and parent is not None and parent.pid in keys:
                keys[p.pid] = keys[parent.pid]
                continue
            cg = read_cgroup(self.proc, p.pid)
            # No namespace access: the cgroup still tells containers apart.
            import hashlib  # lazy: only this fallback needs it (OpenSSL, ~0.6 MiB RSS)

            digest = hashlib.sha256(cg.encode()).hexdigest()[:12]
            keys[p.pid] = f"cg-{digest}" if cg not in ("", "/") else "mnt-unknown"
        return keys

    def group(self, procs: Sequence[RawProc]) -> list[Container]:
        """Group scanned processes into containers (and count restarts)."""
        keys = self._keys(procs)
        try:
            self_key = keys.get(self.self_pid) or f"mnt-{self._self_mnt()}"
        except (FileNotFoundError, PermissionError):
            self_key = ""
        groups: dict[str, list[RawProc]] = {}
        for p in procs:
            groups.setdefault(keys[p.pid], []).append(p)
        out: list[Container] = []
        # A cgroup the sidecar shares (a sandbox, local mode) names no container.
        self_cgroup = read_cgroup(self.proc, self.self_pid)
        for key, members in groups.items():
            members.sort(key=lambda p: (p.start_ticks, p.pid))
            kind = self._kind(key, members, self_key)
            out.append(self._container(key, members, kind, self_cgroup))
        order = {ContainerKind.APP: 0, ContainerKind.SIDECAR: 1, ContainerKind.INFRA: 2}
        # Local mode's tree is the primary target: first among the apps.
        out.sort(
            key=lambda c: (
                order.get(c.kind, 3),
                not c.id.startswith("local-"),
                c.started,
                c.root.pid,
            )
        )
        return self._count_restarts(out)

    def _self_mnt(self) -> int:
        return os.stat(f"{self.proc}/{self.self_pid}/ns/mnt").st_ino

    @staticmethod
    def _kind(key: str, members: list[RawProc], self_key: str) -> ContainerKind:
        if key == self_key:
            return ContainerKind.SIDECAR
        if len(members) == 1 and members[0].pid == 1 and members[0].comm in INFRA_NAMES:
            return ContainerKind.INFRA
        return ContainerKind.APP

    def _container(
        self, cid: str, members: list[RawProc], kind: ContainerKind, self_cgroup: str
    ) -> Container:
        pids = {p.pid for p in members}
        # The root is the earliest process whose parent is not in the group.
        root = next((p for p in members if p.ppid not in pids), members[0])
        if cid.startswith("local-"):
            root = next((p for p in members if p.pid == self.local_root), root)
        cgroup = read_cgroup(self.proc, root.pid)
        name = (
            self.names.get(cid)
            or self.names.get(root.comm)
            or (
                ""
                if kind is ContainerKind.APP and cgroup == self_cgroup
                else name_from_cgroup(cgroup)
            )
            or root.comm
        )
        unavailable: tuple[Unavailable, ...] = ()
        if not cid.startswith(("mnt-", "local-")) or cid == "mnt-unknown":
            unavailable = (Unavailable("mnt_ns", f"processes {sorted(pids)}: {PTRACE_HINT}"),)
        accessible = os.access(f"{self.proc}/{root.pid}/root/", os.R_OK | os.X_OK)
        return Container(
            id=cid,
            name=name,
            kind=kind,
            mnt_ns=root.mnt_ns or 0 if cid.startswith("mnt-") else 0,
            cgroup=cgroup,
            root=ProcessRef(root.pid, root.start_ticks),
            pids=tuple(sorted(pids)),
            started=self._boot + root.start_ticks / CLK_TCK,
            root_accessible=accessible,
            unavailable=unavailable,
        )

    def _count_restarts(self, containers: list[Container]) -> list[Container]:
        """Match containers to slots by (kind, name, ordinal); a new root is a restart."""
        seen: dict[tuple[int, str], int] = {}
        out = []
        with self._lock:
            for c in containers:
                n = seen.get((c.kind, c.name), 0)
                seen[(c.kind, c.name)] = n + 1
                slot_key = f"{int(c.kind)}/{c.name}/{n}"
                slot = self._slots.pop(slot_key, None)
                if slot is None:
                    slot = _Slot(c.root, 0)
                elif slot.root != c.root:
                    slot = _Slot(c.root, slot.restarts + 1)
                self._slots[slot_key] = slot  # re-inserted last: the dict is in LRU order
                out.append(replace(c, restarts=slot.restarts) if slot.restarts else c)
            while len(self._slots) > MAX_SLOTS:
                del self._slots[next(iter(self._slots))]
        return out

    def container(self, container_id: str = "") -> Container:
        """The container with this id (or name); "" = the primary app container.

        Raises:
            NotFound: no such container, or the pod has no app container.
        """
        return self.find(self.containers(), container_id)

    @staticmethod
    def find(containers: Sequence[Container], container_id: str = "") -> Container:
        """Pick a container from a list by id or name ("" = the first app container).

        Raises:
            NotFound: no such container, or there is no app container.
        """
        if not container_id:
            apps = [c for c in containers if c.kind is ContainerKind.APP]
            if not apps:
                raise NotFound("the pod has no app container (only the sidecar is running)")
            return apps[0]
        for c in containers:
            if container_id in (c.id, c.name):
                return c
        known = ", ".join(f"{c.name} ({c.id})" for c in containers)
        raise NotFound(f"no container {container_id!r}; the pod has: {known}")

    def root_of(self, container_id: str = "") -> str:
        """``/proc/<pid>/root`` of a container, checked to be openable.

        Raises:
            AccessDenied: the sidecar may not look into that root.
        """
        c = self.container(container_id)
        if not c.root_accessible:
            raise AccessDenied(
                f"cannot open the root of container {c.name} (pid {c.root.pid}): {PTRACE_HINT}"
            )
        return c.root_path
