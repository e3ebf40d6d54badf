"""The flight recorder: sample the pod cheaply, keep what changed.

One thread samples every ``interval`` seconds and, in between, sleeps in
``poll()`` on a pidfd per target process, so an exit is seen the moment it
happens, while the process is still a zombie and its exit status readable
(``/proc/PID/stat`` field 52). Events go into a bounded :class:`Ring`, to
stdout as structlog JSON, and to anyone following; per-container samples go
into a bounded history for sparklines. What is compared each sample lives in
``_recorder_watch``.
"""

from __future__ import annotations

import os
import select
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import structlog

from agent._pod import Pod
from agent._recorder_log import RecorderReader
from agent._recorder_probe import read_proc
from agent._recorder_watch import Watch
from agent._ring import Ring
from agent.results.events import ContainerSample, Event, EventKind, Severity
from agent.results.pod import ProcessRef

if TYPE_CHECKING:
    from agent._logs import ReaderOptions

log = structlog.get_logger("borescope.recorder")
MAX_PIDFDS = 1024  # beyond this, exits are seen by sampling only (no exit code)


@dataclass(frozen=True, slots=True)
class Thresholds:
    """When a change is worth an event."""

    rss_jump_bytes: int = 64 << 20
    rss_jump_ratio: float = 0.5
    fd_jump: int = 64
    fd_jump_ratio: float = 0.5
    error_burst: int = 10  # error-level lines within one sample interval
    throttle_quiet_s: float = 30.0  # at most one throttling event per container per this
    history: int = 1800  # samples kept per container (an hour at 2 s)


class Recorder:
    """Samples the pod and keeps a ring of events.

    Args:
        pod: the agent's pod view.
        interval: seconds between samples.
        ring_size: events kept.
        log_sources: called with a container id, returns the sources whose
            error-level lines count towards an error burst.
        start: start the sampling thread now (tests may call ``sample()`` by hand).
    """

    def __init__(
        self,
        pod: Pod,
        *,
        interval: float = 2.0,
        ring_size: int = 10_000,
        thresholds: Thresholds | None = None,
        log_sources: Callable[[str], list[object]] | None = None,
        start: bool = True,
    ) -> None:
        self.pod = pod
        self.interval = max(0.05, interval)
        self.thresholds = thresholds or Thresholds()
        self.ring: Ring[Event] = Ring(ring_size)
        self._samples: dict[str, deque[ContainerSample]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._wake_r, self._wake_w = os.pipe()
        self._pidfds: dict[
            int, tuple[int, ProcessRef, str, str]
        ] = {}  # fd -> (pid, ref, container, comm)
        self.watch = Watch(self, pod, self.thresholds, log_sources)
        self._thread: threading.Thread | None = None
        self.emit(
            EventKind.RECORDER_STARTED,
            Severity.INFO,
            "",
            "flight recorder started",
            attrs={"interval_s": f"{self.interval:g}"},
        )
        if start:
            self._thread = threading.Thread(
                target=self._run, name="borescope-recorder", daemon=True
            )
            self._thread.start()

    # -- events -------------------------------------------------------------------

    def emit(
        self,
        kind: EventKind,
        severity: Severity,
        container_id: str,
        message: str,
        *,
        process: ProcessRef | None = None,
        attrs: dict[str, str] | None = None,
        exit_code: int | None = None,
        when: float | None = None,
    ) -> Event:
        """Record one event: into the ring, to stdout, to followers."""
        t = time.time() if when is None else when
        ev = self.ring.append(
            lambda seq: Event(
                seq, t, kind, severity, container_id, message, process, dict(attrs or {}), exit_code
            )
        )
        log.info(
            "recorder.event",
            seq=ev.seq,
            kind=kind.name.lower(),
            severity=severity.name.lower(),
            container=container_id,
            pid=process.pid if process else None,
            message=message,
            attrs=ev.attrs or None,
            exit_code=exit_code,
        )
        return ev

    def record_sample(self, s: ContainerSample) -> None:
        """Keep one container sample in its bounded history."""
        with self._lock:
            hist = self._samples.get(s.container_id)
            if hist is None:
                hist = self._samples[s.container_id] = deque(maxlen=self.thresholds.history)
            hist.append(s)

    def forget_container(self, container_id: str) -> None:
        """Drop the history of a container that is gone (bounded memory across restarts)."""
        with self._lock:
            self._samples.pop(container_id, None)

    def samples(self, since: float = 0.0, container_id: str = "") -> list[ContainerSample]:
        """Samples newer than ``since``, for one container or all, oldest first."""
        with self._lock:
            hists = (
                [self._samples.get(container_id, deque())]
                if container_id
                else list(self._samples.values())
            )
            out = [s for h in hists for s in h if s.time > since]
        out.sort(key=lambda s: (s.time, s.container_id))
        return out

    def log_reader(self, cursor: str | None, opts: ReaderOptions) -> RecorderReader:
        """The ring as a source of the merged log stream."""
        return RecorderReader(self.ring, cursor, opts)

    # -- process exits via pidfd ----------------------------------------------------

    def track_exit(self, ref: ProcessRef, container_id: str, comm: str) -> None:
        """Watch a process with a pidfd so its exit (and status) is seen at once."""
        if len(self._pidfds) >= MAX_PIDFDS:
            return
        try:
            fd = os.pidfd_open(ref.pid)
        except (ProcessLookupError, OSError):
            return  # already gone, or pidfds unsupported: sampling still notices the exit
        self._pidfds[fd] = (ref.pid, ref, container_id, comm)

    def untrack(self, pid: int) -> None:
        """Stop watching a pid (its exit was reported by sampling)."""
        for fd, (p, *_rest) in list(self._pidfds.items()):
            if p == pid:
                del self._pidfds[fd]
                os.close(fd)

    def _exited(self, fd: int) -> None:
        pid, ref, cid, comm = self._pidfds.pop(fd)
        os.close(fd)
        s = read_proc(self.pod.proc, pid, count_fds=False)
        code: int | None = None
        attrs: dict[str, str] = {"comm": comm}
        if s is not None and s.start_ticks == ref.start_ticks and s.state == "Z":
            status = s.exit_code
            if status & 0x7F:
                sig = status & 0x7F
                code = 128 + sig
                attrs["signal"] = _signame(sig)
            else:
                code = (status >> 8) & 0xFF
        self.watch.exited(ref, cid, comm, code, attrs)

    # -- thread ---------------------------------------------------------------------

    def sample(self) -> None:
        """One sampling pass (the thread calls this every interval)."""
        self.watch.sample()

    def _run(self) -> None:
        next_at = time.monotonic()
        while not self._stop.is_set():
            now = time.monotonic()
            if now >= next_at:
                started = now
                try:
                    self.sample()
                except Exception:  # a recorder bug must not kill the thread; say so loudly
                    log.exception("recorder.sample_failed")
                behind = time.monotonic() - next_at
                if behind > 3 * self.interval:
                    self.emit(
                        EventKind.RECORDER_GAP,
                        Severity.WARNING,
                        "",
                        f"sampling fell {behind:.1f}s behind; changes in that time may be missing",
                        attrs={"behind_s": f"{behind:.1f}"},
                    )
                next_at = max(next_at + self.interval, started + self.interval / 2)
                continue
            poller = select.poll()
            poller.register(self._wake_r, select.POLLIN)
            for fd in self._pidfds:
                poller.register(fd, select.POLLIN)
            for fd, _ in poller.poll(max(0.0, next_at - now) * 1000):
                if fd == self._wake_r:
                    return
                if fd in self._pidfds:
                    self._exited(fd)

    def close(self) -> None:
        """Stop sampling and release every fd. Idempotent."""
        if self._stop.is_set():
            return
        self._stop.set()
        os.write(self._wake_w, b"x")
        if self._thread is not None:
            self._thread.join(timeout=5)
        for fd in list(self._pidfds):
            os.close(fd)
        self._pidfds.clear()
        self.watch.close()
        os.close(self._wake_r)
        os.close(self._wake_w)


def _signame(sig: int) -> str:
    import signal

    try:
        return signal.Signals(sig).name
    except ValueError:
        return f"signal {sig}"
