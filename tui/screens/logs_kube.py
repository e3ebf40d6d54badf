"""The app's stdout/stderr read through the Kubernetes API, fed into the home screen.

When the TUI was opened through Kubernetes (``borescope tui pod/NAME``, the
target picker, ``attach``), the app's own output is read client-side from
``pods/log`` (``tui.kube.logs``: one follower per app container, resumed
across drops, never the sidecar's own output) and merged with the sidecar's
records by time, as one more source (``SOURCE_KIND_KUBERNETES``, shown as
``k8s:CONTAINER``). Where the sidecar already reads the app's stdout itself
(a ``SOURCE_KIND_STDIO`` source: the sandbox pod, the demo), this is not
started: the lines would show twice.

A reader thread per container puts lines in one bounded queue; when the
screen is behind, the reader waits and so does the API stream (TCP flow
control): nothing grows without bound and no line is dropped. The screen's
timer takes them (``take``) with the sidecar's batches. A refusal (RBAC,
the pod gone) is one notification; the sidecar's logs carry on.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from datetime import UTC
from typing import TYPE_CHECKING, Any

import grpc

from protos import logs_pb2
from tui.sanitize import sanitize
from tui.widgets.log_fields import level_of

if TYPE_CHECKING:
    from textual.screen import Screen

    from tui.client import Client
    from tui.kube.logs import LogLine, PodLogs

QUEUE_LINES = 10_000
TAIL_LINES = 500
PUT_WAIT_S = 0.2


def source_id(namespace: str, pod: str, container: str) -> str:
    """The source id of a container's output read through the API."""
    return f"kube:{namespace}/{pod}/{container}"


def time_ns(line: LogLine) -> int:
    """Epoch nanoseconds of the kubelet's stamp (all nine digits), 0 when it had none."""
    if line.time is None:
        return 0
    whole = int(line.time.replace(microsecond=0, tzinfo=UTC).timestamp())
    frac = line.stamp.rstrip("Z").partition(".")[2]
    return whole * 1_000_000_000 + int((frac + "000000000")[:9])


class KubeFeed:
    """Follows every app container of a pod through the API (see the module docstring).

    Args:
        cluster: the cluster (``tui.kube.config.Cluster``).
        pod: the pod (``tui.kube.targets.PodTarget``).
    """

    def __init__(self, cluster: Any, pod: Any) -> None:
        self.cluster = cluster
        self.pod = pod
        self._lines: queue.Queue[tuple[str, int, LogLine]] = queue.Queue(maxsize=QUEUE_LINES)
        self._new_sources: list[logs_pb2.Source] = []
        self._lock = threading.Lock()
        self._followers: list[PodLogs] = []
        self._closed = threading.Event()
        self.skipped = ""
        """Why the feed did not start ("" while it runs)."""

    # -- threads ---------------------------------------------------------------

    def start(self, screen: Screen[Any], client: Client) -> None:
        """Decide (in a worker: it asks the sidecar) and start a reader per container."""
        screen.run_worker(
            lambda: self._begin(screen, client),
            thread=True,
            group="kube-logs",
            exit_on_error=False,
        )

    def _begin(self, screen: Screen[Any], client: Client) -> None:
        from tui.kube.logs import app_logs

        if self._sidecar_reads_stdout(client):
            self.skipped = "the sidecar reads the app's stdout itself"
            return
        followers = app_logs(self.cluster, self.pod, tail_lines=TAIL_LINES)
        with self._lock:
            if self._closed.is_set():
                return
            self._followers = followers
        threads = [
            threading.Thread(
                target=self._read, args=(screen, f), name=f"kube-logs-{f.container}", daemon=True
            )
            for f in followers
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    @staticmethod
    def _sidecar_reads_stdout(client: Client) -> bool:
        try:
            listing = client.logs.ListSources(
                logs_pb2.ListSourcesRequest(), metadata=client.metadata, timeout=10
            )
        except grpc.RpcError:
            return False  # unknown: the API's copy is better than none
        return any(s.kind == logs_pb2.SOURCE_KIND_STDIO for s in listing.sources)

    def _read(self, screen: Screen[Any], logs: PodLogs) -> None:
        from tui.kube.errors import KubeError

        sid = source_id(logs.namespace, logs.pod, logs.container)
        with self._lock:
            self._new_sources.append(
                logs_pb2.Source(
                    id=sid,
                    kind=logs_pb2.SOURCE_KIND_KUBERNETES,
                    path=logs.container,
                    description=f"{logs.pod}/{logs.container} stdout/stderr (Kubernetes API)",
                )
            )
        seq = 0
        try:
            for line in logs:
                while not self._closed.is_set():
                    try:
                        self._lines.put((sid, seq, line), timeout=PUT_WAIT_S)
                        break
                    except queue.Full:
                        continue  # the screen is behind: wait (the API stream waits too)
                if self._closed.is_set():
                    return
                seq += 1
        except Exception as e:  # a plain thread: say it, never a traceback
            if self._closed.is_set():
                return
            why = str(e) if isinstance(e, KubeError) else f"{type(e).__name__}: {e}"
            text = sanitize(f"The app's output through the Kubernetes API stopped: {why}")
            with contextlib.suppress(RuntimeError):  # the app is gone
                screen.app.call_from_thread(screen.notify, text, severity="warning", timeout=10)

    def close(self) -> None:
        """Stop every reader (a blocked read is interrupted)."""
        self._closed.set()
        with self._lock:
            followers = list(self._followers)
        for f in followers:
            f.close()

    # -- UI thread -------------------------------------------------------------

    def take(self, limit: int) -> tuple[list[logs_pb2.Source], list[logs_pb2.Record]]:
        """Sources that appeared and up to ``limit`` records, in arrival order per source."""
        with self._lock:
            sources, self._new_sources = self._new_sources, []
        out: list[logs_pb2.Record] = []
        while len(out) < limit:
            try:
                sid, seq, line = self._lines.get_nowait()
            except queue.Empty:
                break
            t = time_ns(line)
            out.append(
                logs_pb2.Record(
                    time_ns=t or time.time_ns(),
                    time_is_receive=not t,
                    source_id=sid,
                    level=level_of(line.text),  # type: ignore[arg-type]
                    message=line.text,
                    seq=seq,
                    kind=logs_pb2.RECORD_KIND_LINE,
                )
            )
        return sources, out
