"""What the recorder compares from one sample to the next, and the events that follow."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from agent._common import CLK_TCK
from agent._pod import Pod
from agent._recorder_probe import (
    ProcSample,
    cgroup_paths,
    listening,
    memory_usage,
    oom_kills,
    read_proc,
    socket_owner,
    throttled,
)
from agent.errors import BorescopeError
from agent.results.events import ContainerSample, EventKind, Severity
from agent.results.pod import Container, ContainerKind, ProcessRef

if TYPE_CHECKING:
    from agent._recorder import Recorder, Thresholds

LOG_REDISCOVER_S = 30.0
RESTART_WINDOW_S = 60.0
MAX_ERROR_READS = 16  # follower reads per source per sample: bounds the recorder's log work


@dataclass
class _Box:
    """What the recorder remembers about one container between samples."""

    name: str
    root: ProcessRef
    procs: dict[ProcessRef, ProcSample] = field(default_factory=dict)
    cpu_at: float = 0.0
    rss: int = 0
    fds: int = 0
    paths: dict[str, str] = field(default_factory=dict)  # cgroup paths of the root process
    throttled: int | None = None
    throttle_said: float = 0.0
    readers: list[Any] = field(default_factory=list)
    readers_at: float = 0.0


class Watch:
    """The per-sample comparison, kept apart from the thread and ring (``_recorder``)."""

    def __init__(
        self,
        rec: Recorder,
        pod: Pod,
        thresholds: Thresholds,
        log_sources: Callable[[str], list[Any]] | None,
    ) -> None:
        self.rec = rec
        self.pod = pod
        self.t = thresholds
        self.log_sources = log_sources
        self.boxes: dict[str, _Box] = {}  # by container id
        self.roots: dict[str, ProcessRef] = {}  # container name -> root, for restarts
        self.ports: dict[str, tuple[int, str]] | None = None  # "tcp addr:port" -> (pid, container)
        self.first = True
        self.oom_seen: dict[str, int] = {}  # cgroup path -> OOM kills seen
        self.foreign: set[str] = set()  # listening ports that belong to no app process
        self.recent_exits: dict[tuple[str, str], tuple[int, float]] = {}

    def exited(
        self, ref: ProcessRef, cid: str, comm: str, code: int | None, attrs: dict[str, str]
    ) -> None:
        """A tracked process exited (from a pidfd, or noticed by sampling)."""
        box = self.boxes.get(cid)
        if box is not None:
            box.procs.pop(ref, None)
            if attrs.get("signal") == "SIGKILL" and box.paths:
                self.check_oom(cid, box.name, box.paths)  # the OOM killer's signal: say why first
        self.recent_exits[(cid, comm)] = (ref.pid, time.time())
        if len(self.recent_exits) > 1024:  # bounded: forget the oldest
            del self.recent_exits[next(iter(self.recent_exits))]
        how = "" if code is None else f" with status {code}"
        if "signal" in attrs:
            how = f", killed by {attrs['signal']}"
        self.rec.emit(
            EventKind.PROCESS_EXITED,
            Severity.WARNING if code else Severity.INFO,
            cid,
            f"process {ref.pid} ({comm}) exited{how}",
            process=ref,
            attrs=attrs,
            exit_code=code,
        )

    def sample(self) -> None:
        """Compare the pod now with the last sample and emit what changed."""
        now = time.time()
        try:
            containers = [c for c in self.pod.containers() if c.kind is ContainerKind.APP]
        except BorescopeError:
            containers = []
        local = getattr(self.pod, "local_root", None)
        if local:  # local mode: the app is that process tree, not everything else on the machine
            containers = [c for c in containers if c.id == f"local-{local}"]
        seen: set[str] = set()
        for c in containers:
            seen.add(c.id)
            self._container(c, now)
        for cid in list(self.boxes):
            if cid not in seen:
                box = self.boxes.pop(cid)
                for ref, p in box.procs.items():
                    self.rec.untrack(ref.pid)
                    self.exited(ref, cid, p.comm, None, {"comm": p.comm})
                for r in box.readers:
                    r.close()
                self.rec.forget_container(cid)
        self._ports(containers)
        self.first = False

    def _container(self, c: Container, now: float) -> None:
        proc = self.pod.proc
        box = self.boxes.get(c.id)
        if box is None:
            box = self.boxes[c.id] = _Box(c.name, c.root, cpu_at=now)
            old_root = self.roots.get(c.name)
            if old_root is not None and old_root != c.root:
                self.rec.emit(
                    EventKind.CONTAINER_RESTARTED,
                    Severity.WARNING,
                    c.id,
                    f"container {c.name} restarted: root process {old_root.pid} -> {c.root.pid}",
                    process=c.root,
                    attrs={"old_pid": str(old_root.pid), "name": c.name},
                )
        self.roots[c.name] = c.root
        current: dict[ProcessRef, ProcSample] = {}
        for pid in c.pids:
            s = read_proc(proc, pid)
            if s is not None and s.state != "Z":  # a zombie has exited (its pidfd says so)
                current[ProcessRef(pid, s.start_ticks)] = s
        fresh = not box.procs and self.first
        for ref, s in current.items():
            if ref not in box.procs:
                self.rec.track_exit(ref, c.id, s.comm)
                if not fresh:
                    self._started(c, ref, s, now)
        for ref, s in list(box.procs.items()):
            if ref not in current:
                self.rec.untrack(ref.pid)
                self.exited(ref, c.id, s.comm, None, {"comm": s.comm})
        dt = max(1e-3, now - box.cpu_at)
        ticks = sum(
            s.cpu_ticks - box.procs[r].cpu_ticks for r, s in current.items() if r in box.procs
        )
        cpu = 100.0 * ticks / CLK_TCK / dt if box.procs else 0.0
        rss = sum(s.rss_bytes for s in current.values())
        fds = sum(s.fds for s in current.values() if s.fds > 0)
        paths = cgroup_paths(proc, c.root.pid)
        self.rec.record_sample(
            ContainerSample(now, c.id, cpu, rss, len(current), fds, memory_usage(paths))
        )
        if box.procs:
            self._jumps(c, box, rss, fds)
        self._cgroup(c, box, paths, now)
        self._errors(c, box, now)
        box.procs, box.cpu_at, box.rss, box.fds = current, now, rss, fds

    def _started(self, c: Container, ref: ProcessRef, s: ProcSample, now: float) -> None:
        attrs = {"comm": s.comm}
        msg = f"process {ref.pid} ({s.comm}) started"
        # The same program exiting and starting again in one container is a restart:
        # say so, so a crash loop reads as one at a glance.
        prev = self.recent_exits.get((c.id, s.comm))
        if prev is not None and now - prev[1] < RESTART_WINDOW_S:
            attrs["restart_of"] = str(prev[0])
            msg = f"process {s.comm} restarted: pid {prev[0]} -> {ref.pid}"
        self.rec.emit(EventKind.PROCESS_STARTED, Severity.INFO, c.id, msg, process=ref, attrs=attrs)

    def _jumps(self, c: Container, box: _Box, rss: int, fds: int) -> None:
        t = self.t
        if rss - box.rss >= max(t.rss_jump_bytes, box.rss * t.rss_jump_ratio):
            self.rec.emit(
                EventKind.RSS_JUMP,
                Severity.WARNING,
                c.id,
                f"memory of {c.name} jumped from {box.rss >> 20} MiB to {rss >> 20} MiB",
                attrs={"from_bytes": str(box.rss), "to_bytes": str(rss)},
            )
        if fds - box.fds >= max(t.fd_jump, box.fds * t.fd_jump_ratio):
            self.rec.emit(
                EventKind.FD_JUMP,
                Severity.WARNING,
                c.id,
                f"open files of {c.name} jumped from {box.fds} to {fds}",
                attrs={"from": str(box.fds), "to": str(fds)},
            )

    def check_oom(self, cid: str, name: str, paths: dict[str, str]) -> None:
        """Compare a cgroup's OOM-kill counter with the last one seen for that cgroup.

        Counters are kept by cgroup path, not by container: an OOM kill of the
        main process ends the container, and its restart (same cgroup in the
        sandbox) must still see the kill. A SIGKILL exit checks at once too,
        while a cgroup that is about to be removed (Kubernetes) still exists.
        """
        key = paths.get("") if paths.get("") not in (None, "/") else paths.get("memory", "")
        if not key:
            return
        oom = oom_kills(paths)
        if oom is None:
            return
        prev = self.oom_seen.pop(key, None)
        self.oom_seen[key] = oom  # re-inserted last: the dict is in LRU order
        if len(self.oom_seen) > 256:
            del self.oom_seen[next(iter(self.oom_seen))]
        if prev is not None and oom > prev:
            self.rec.emit(
                EventKind.OOM_KILL,
                Severity.CRITICAL,
                cid,
                f"the kernel OOM-killed {oom - prev} process(es) in {name} (memory limit hit)",
                attrs={"count": str(oom - prev), "total": str(oom), "cgroup": key},
            )

    def _cgroup(self, c: Container, box: _Box, paths: dict[str, str], now: float) -> None:
        box.paths = paths
        self.check_oom(c.id, c.name, paths)
        thr = throttled(paths)
        if (
            thr is not None
            and box.throttled is not None
            and thr > box.throttled
            and now - box.throttle_said >= self.t.throttle_quiet_s
        ):
            box.throttle_said = now
            self.rec.emit(
                EventKind.CPU_THROTTLED,
                Severity.WARNING,
                c.id,
                f"{c.name} was CPU-throttled in {thr - box.throttled} more period(s)",
                attrs={"periods": str(thr - box.throttled), "total": str(thr)},
            )
        box.throttled = thr if thr is not None else box.throttled

    def _errors(self, c: Container, box: _Box, now: float) -> None:
        if self.log_sources is None:
            return
        if now - box.readers_at > LOG_REDISCOVER_S:
            have = {r.id for r in box.readers}
            for r in self.log_sources(c.id):
                if r.id in have:
                    r.close()  # a source already read: keep the reader (and its position)
                else:
                    box.readers.append(r)
            box.readers_at = now
        count = 0
        first = ""
        for r in box.readers:
            for _ in range(MAX_ERROR_READS):
                out: list[Any] = []
                r.take(10_000, out)
                count += len(out)
                if out and not first:
                    first = out[0].message[:200]
                if not out and r.idle:
                    break
        if count >= self.t.error_burst:
            self.rec.emit(
                EventKind.ERROR_BURST,
                Severity.WARNING,
                c.id,
                f"{count} error-level log lines in {c.name} within {self.rec.interval:g}s",
                attrs={"count": str(count), "first": first},
            )

    def _ports(self, containers: list[Container]) -> None:
        """Listening ports of the app containers opened or closed since the last sample.

        The pod shares one network namespace, so the sockets are listed once;
        a new port is attributed by a bounded fd scan of the app's processes.
        A port no app process holds (the sidecar's own, or another program's in
        local mode) is not the app's and is left out; when the fds cannot be
        read at all, the port is reported with an unknown owner.
        """
        if not containers:
            return
        proc = self.pod.proc
        found = listening(proc, containers[0].root.pid)
        if found is None:
            return
        before = self.ports
        now: dict[str, tuple[int, str]] = {}
        for key, inode in found.items():
            if before is not None and key in before:
                now[key] = before[key]
                continue
            if before is not None and key in self.foreign:
                continue
            owner, cid, complete = 0, "", True
            for c in containers:
                pid, ok = socket_owner(proc, list(c.pids), inode)
                complete = complete and ok
                if pid is not None:
                    owner, cid = pid, c.id
                    break
            if not owner and complete:
                self.foreign.add(key)
                continue
            now[key] = (owner, cid)
            if before is not None:
                self.rec.emit(
                    EventKind.PORT_OPENED,
                    Severity.INFO,
                    cid,
                    f"listening on {key}" + (f" (pid {owner})" if owner else ""),
                    attrs={"port": key, "pid": str(owner) if owner else ""},
                )
        self.foreign &= set(found)  # bounded: only ports that still exist
        for key, (owner, cid) in (before or {}).items():
            if key not in found:
                self.rec.emit(
                    EventKind.PORT_CLOSED,
                    Severity.WARNING,
                    cid,
                    f"stopped listening on {key}" + (f" (was pid {owner})" if owner else ""),
                    attrs={"port": key, "pid": str(owner) if owner else ""},
                )
        self.ports = now

    def close(self) -> None:
        """Release the log readers."""
        for box in self.boxes.values():
            for r in box.readers:
                r.close()
            box.readers.clear()
