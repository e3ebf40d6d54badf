"""Assemble one process's details, and sample it for a watch stream."""

from __future__ import annotations

import os
from collections.abc import Collection

from agent import _cgroup
from agent._common import PAGE_SIZE
from agent._net_sockets import list_sockets
from agent._proc import ProcessReader, check_identity, now_boottime, rate
from agent._proc_detail import Redactor, environment, limits, open_files, threads
from agent._proc_scan import PTRACE_HINT, Vanished, fd_count, open_pid, read_proc, scan
from agent.errors import AccessDenied, InvalidArgument, NotFound
from agent.results.net import Socket
from agent.results.pod import ProcessRef, Unavailable
from agent.results.proc import (
    CgroupStats,
    EnvVar,
    Limit,
    OpenFile,
    ProcessDetail,
    ProcessSample,
    ThreadInfo,
)

SECTIONS = ("env", "limits", "cgroup", "files", "threads", "sockets")


def _sockets(pid: int, container_id: str) -> tuple[tuple[Socket, ...], list[Unavailable]]:
    """Sockets held by ``pid``, via the network reader (owners from this pid's fds)."""
    try:
        found = list_sockets(pid, [pid], {pid: container_id})
    except (AccessDenied, NotFound) as e:
        return (), [Unavailable("sockets", str(e))]
    mine = tuple(s for s in found.sockets if any(o.process.pid == pid for o in s.owners))
    return mine, list(found.unavailable)


def get_process(
    reader: ProcessReader,
    ref: ProcessRef,
    sections: Collection[str],
    redactor: Redactor,
) -> ProcessDetail:
    """Everything about one process; ``sections`` empty = all of ``SECTIONS``.

    Raises:
        InvalidArgument: an unknown section.
        NotFound: the process does not exist.
        ProcessRestarted: ``ref.start_ticks`` no longer matches.
    """
    bad = sorted(set(sections) - set(SECTIONS))
    if bad:
        raise InvalidArgument(f"unknown section(s) {', '.join(bad)}; known: {', '.join(SECTIONS)}")
    want = set(sections or SECTIONS)
    missing: list[Unavailable] = []
    with reader.opened(ref) as (dfd, raw):
        since = now_boottime()
        # One scan serves the container id and the children.
        everyone = scan(reader.proc, cmdline=False)
        container = next((c for c in reader.pod.group(everyone) if raw.pid in c.pids), None)
        container_id = container.id if container is not None else ""
        children = tuple(sorted(p.pid for p in everyone if p.ppid == raw.pid))
        env: tuple[EnvVar, ...] = ()
        lim: tuple[Limit, ...] = ()
        files: tuple[OpenFile, ...] = ()
        thr: tuple[ThreadInfo, ...] = ()
        cg: CgroupStats | None = None
        if "env" in want:
            env, m = environment(dfd, redactor)
            missing += m
        if "limits" in want:
            lim, m = limits(dfd)
            missing += m
        if "files" in want:
            files, m = open_files(dfd)
            missing += m
        if "threads" in want:
            thr, m = threads(dfd)
            missing += m
        if "cgroup" in want:
            try:
                cg = _cgroup.stats(ref.pid, reader.proc)
            except (FileNotFoundError, ProcessLookupError):
                raise NotFound(f"no process {ref.pid} (it exited)") from None
            except PermissionError:
                missing.append(Unavailable("cgroup", PTRACE_HINT))
        socks: tuple[Socket, ...] = ()
        if "sockets" in want:
            socks, m = _sockets(ref.pid, container_id)
            missing += m
        # After the sections: the threads' sample window usually covers the cpu one.
        info = reader.info(dfd, raw, container, reader.cpu_of(raw, since))
        # Still the same process? Reads through dfd fail once it is gone.
        try:
            os.stat("stat", dir_fd=dfd)
        except (FileNotFoundError, ProcessLookupError):
            raise NotFound(f"process {ref.pid} exited while it was read") from None
    return ProcessDetail(
        process=info,
        env=env,
        limits=lim,
        cgroup=cg,
        open_files=files,
        threads=thr,
        sockets=socks,
        children=children,
        unavailable=tuple(missing),
    )


class Sampler:
    """Successive samples of one process for a watch stream (cpu % since the last one)."""

    def __init__(self, reader: ProcessReader, ref: ProcessRef) -> None:
        self.reader = reader
        self.ref = ref
        self._last: tuple[float, dict[tuple[int, int], int]] | None = None

    def sample(self) -> ProcessSample:
        """One sample now.

        Raises:
            NotFound: the process exited.
            ProcessRestarted: its pid now belongs to another process.
        """
        try:
            dfd = open_pid(self.reader.proc, self.ref.pid)
        except Vanished:
            raise NotFound(f"process {self.ref.pid} exited") from None
        try:
            try:
                raw = read_proc(dfd, self.ref.pid, (), cmdline=False)
            except Vanished:
                raise NotFound(f"process {self.ref.pid} exited") from None
            if raw is None:
                raise NotFound(f"pid {self.ref.pid} is a kernel thread")
            check_identity(self.ref, raw)
            try:
                fds: int | None = fd_count(dfd)
            except (PermissionError, FileNotFoundError, ProcessLookupError):
                fds = None
        finally:
            os.close(dfd)
        now = now_boottime()
        key = (raw.pid, raw.start_ticks)
        ticks = raw.utime + raw.stime
        cpu = None
        if self._last is not None:
            cpu = rate(ticks, raw.start_ticks, now, self._last, key)
        else:
            cpu = self.reader.cpu_of(raw, now)
        self._last = (now, {key: ticks})
        return ProcessSample(
            time=self.reader.boot + now,
            cpu_percent=cpu,
            rss=raw.rss_pages * PAGE_SIZE,
            fds=fds,
            threads=raw.threads,
        )
