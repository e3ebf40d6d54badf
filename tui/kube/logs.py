"""The app's stdout/stderr through the API (``pods/log``), as (timestamp, line) pairs.

Always ``container=`` (the pod has a sidecar too, so the API would refuse to
guess) and ``timestamps=true`` (the kubelet's RFC3339Nano prefix is what
lets these lines merge with the sidecar's records by time). A follow stream
that ends (API server restart, network blip, container restart) is resumed
from ``sinceTime``; the API filters by whole seconds and inclusively, so the
lines of the last second already seen come back and are dropped here by
counting them, never shown twice. Bytes are decoded with replacement, and a
line longer than ``max_line`` is cut with a marker: nothing grows unbounded.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError, ProtocolError

from tui.kube.config import Cluster
from tui.kube.errors import KubeError, explain
from tui.kube.targets import PodTarget, app_containers

READ_CHUNK = 64 * 1024
MAX_LINE = 16 * 1024
BACKOFF_FIRST_S = 0.5
BACKOFF_MAX_S = 10.0


@dataclass(frozen=True)
class LogLine:
    """One line of the container's output.

    Attributes:
        time: the kubelet's timestamp (UTC); None if the line had none.
        stamp: the timestamp as sent (RFC3339Nano; sorts like the time).
        text: the line, decoded with replacement, without its newline.
    """

    time: datetime | None
    stamp: str
    text: str


def parse_line(raw: bytes) -> LogLine:
    """Split ``2026-01-02T03:04:05.123456789Z text`` into time and text."""
    stamp, sep, rest = raw.partition(b" ")
    text = rest if sep else b""
    try:
        s = stamp.decode("ascii")
        # datetime keeps microseconds: drop the last 3 of the 9 digits.
        base, _, frac = s.rstrip("Z").partition(".")
        when = datetime.strptime(base, "%Y-%m-%dT%H:%M:%S").replace(
            tzinfo=UTC, microsecond=int((frac + "000000")[:6])
        )
    except (UnicodeDecodeError, ValueError):
        return LogLine(None, "", raw.decode("utf-8", "replace"))
    return LogLine(when, s, text.decode("utf-8", "replace"))


def _message(body: str) -> str:
    try:
        doc = json.loads(body)
    except ValueError:
        return body.strip()[:300]
    return str(doc.get("message", body))[:300] if isinstance(doc, dict) else body[:300]


def _second(stamp: str) -> str:
    return stamp[:19]


class PodLogs:
    """Iterate a container's log lines, following and resuming across drops.

    Args:
        cluster: where the pod is.
        namespace, pod, container: whose logs (container is required).
        follow: keep streaming (and resume after a drop).
        previous: the previous (terminated) instance of the container; no follow.
        since: only lines at or after this time (resume point across runs).
        tail_lines: start with only the last N lines (first request only).
        max_line: longer lines are cut, with a marker.
    """

    def __init__(
        self,
        cluster: Cluster,
        namespace: str,
        pod: str,
        container: str,
        *,
        follow: bool = True,
        previous: bool = False,
        since: datetime | None = None,
        tail_lines: int | None = None,
        max_line: int = MAX_LINE,
    ) -> None:
        if not container:
            raise KubeError(f"pod {pod}: say which container's logs (the pod has several)")
        self.cluster = cluster
        self.namespace, self.pod, self.container = namespace, pod, container
        self.follow = follow and not previous
        self.previous = previous
        self.tail_lines = tail_lines
        self.max_line = max_line
        self.reconnects = 0
        """How many times a dropped stream was resumed."""
        self._since = since.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if since else ""
        self._last = ""
        # Texts delivered with the newest timestamp, and (while resuming) what
        # of them the API is still expected to send again.
        self._at_last: Counter[str] = Counter()
        self._replay: Counter[str] | None = None
        self._closed = threading.Event()
        self._response: object | None = None

    def close(self) -> None:
        """Stop iterating (unblocks a read in progress)."""
        self._closed.set()
        resp = self._response
        if resp is not None:
            shutdown = getattr(resp, "shutdown", None)
            if shutdown is not None:
                shutdown()

    def _request(self, since: str, tail: int | None) -> object:
        api = self.cluster.api_client
        query: list[tuple[str, object]] = [
            ("container", self.container),
            ("timestamps", True),
        ]
        if self.follow:
            query.append(("follow", True))
        if self.previous:
            query.append(("previous", True))
        if since:
            # The generated read_namespaced_pod_log has sinceSeconds only;
            # sinceTime (the API's own resume parameter) is added here.
            query.append(("sinceTime", since))
        elif tail is not None:
            query.append(("tailLines", tail))
        params = api.param_serialize(
            method="GET",
            resource_path="/api/v1/namespaces/{namespace}/pods/{name}/log",
            path_params={"namespace": self.namespace, "name": self.pod},
            query_params=query,
            header_params={"Accept": "text/plain"},
            auth_settings=["BearerToken"],
        )
        try:
            resp = api.call_api(*params, _request_timeout=(10, None) if self.follow else 60)
        except ApiException as e:
            raise explain(e, "get", "pods/log", self.namespace, self.pod) from None
        except HTTPError as e:
            raise KubeError(f"cannot reach the Kubernetes API for pods/log: {e}") from None
        if not 200 <= resp.status <= 299:
            resp.read()  # type: ignore[no-untyped-call]
            body = (resp.data or b"").decode("utf-8", "replace")
            if resp.status == 400:
                # "container ... is waiting to start", "previous terminated
                # container ... not found": the API's own words say it best.
                raise KubeError(
                    f"logs of {self.pod}/{self.container}: {_message(body)}", resp.status
                )
            try:
                ApiException.from_response(http_resp=resp, body=body, data=None)
            except ApiException as err:
                raise explain(err, "get", "pods/log", self.namespace, self.pod) from None
            raise KubeError(f"logs of {self.pod}: HTTP {resp.status}", resp.status)
        return resp.response

    def _lines(self, resp: object) -> Iterator[bytes]:
        """Split a streaming body into lines, each at most ``max_line`` bytes."""
        buf = b""
        skipping = False
        stream = resp.stream(READ_CHUNK, decode_content=True)  # type: ignore[attr-defined]
        for chunk in stream:
            buf += chunk
            while True:
                nl = buf.find(b"\n")
                if nl < 0:
                    if len(buf) > self.max_line:
                        if not skipping:
                            yield buf[: self.max_line] + " …[line cut]".encode()
                        skipping = True
                        buf = b""
                    break
                line, buf = buf[:nl], buf[nl + 1 :]
                if skipping:
                    skipping = False
                    continue
                if len(line) > self.max_line:
                    line = line[: self.max_line] + " …[line cut]".encode()
                yield line
        if buf and not skipping:
            yield buf

    def _keep(self, line: LogLine) -> bool:
        """False for a line already delivered before a resume."""
        if not line.stamp:
            return True
        if self._replay is not None:
            if line.stamp < self._last:
                return False
            if line.stamp == self._last and self._replay[line.text] > 0:
                self._replay[line.text] -= 1
                return False
            self._replay = None  # past the replayed lines: everything is new
        if line.stamp != self._last:
            self._at_last.clear()
            self._last = line.stamp
        self._at_last[line.text] += 1
        return True

    def __iter__(self) -> Iterator[LogLine]:
        first = True
        backoff = BACKOFF_FIRST_S
        while not self._closed.is_set():
            since = (_second(self._last) + "Z") if self._last else self._since
            try:
                resp = self._request(since, self.tail_lines if first else None)
            except KubeError as e:
                if first or not self.follow or e.status in (401, 403, 404):
                    raise
                if self._closed.wait(backoff):
                    return
                backoff = min(backoff * 2, BACKOFF_MAX_S)
                continue
            self._response = resp
            self._replay = None if first else Counter(self._at_last)
            first = False
            got = False
            try:
                for raw in self._lines(resp):
                    line = parse_line(raw)
                    if self._keep(line):
                        got = True
                        yield line
            except (ProtocolError, HTTPError, OSError, ValueError):
                pass  # the stream broke: resume below
            finally:
                self._response = None
                release = getattr(resp, "release_conn", None)
                if release is not None:
                    release()
            if not self.follow or self._closed.is_set():
                return
            self.reconnects += 1
            backoff = BACKOFF_FIRST_S if got else min(backoff * 2, BACKOFF_MAX_S)
            if self._closed.wait(backoff if not got else 0.05):
                return


def app_logs(
    cluster: Cluster,
    target: PodTarget,
    *,
    since: datetime | None = None,
    tail_lines: int | None = 500,
) -> list[PodLogs]:
    """A follower per app container of ``target`` (never the sidecar's own output).

    For the Logs screen: iterate each in a worker and merge by ``LogLine.stamp``
    with the sidecar's records; ``close()`` them when the screen goes away.
    """
    return [
        PodLogs(cluster, target.namespace, target.pod, c, since=since, tail_lines=tail_lines)
        for c in app_containers(target.raw) or [target.container]
    ]
