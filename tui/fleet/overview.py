"""One row of health per pod: cpu, rss, restarts, error-log rate, connections.

Each pod is asked four cheap things (the recorder's latest sample, its
containers, its error lines of the last minute, a socket summary) through
``fanout.ask``, so a slow or dead pod costs one timeout and shows its error
in its own row while the others fill in.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from protos import events_pb2, info_pb2, logs_pb2, network_pb2
from tui.client import Client
from tui.fleet.fanout import Answer, ask
from tui.fleet.members import Fleet

#: Window for the error-log rate.
ERROR_WINDOW_S = 60
#: Error lines counted at most per pod and window (the rate shows "≥" beyond).
MAX_ERROR_LINES = 1000
ERROR_LEVEL = 5  # logs.proto: 5 = error (and fatal above)


@dataclass(frozen=True)
class PodHealth:
    """What the fleet screen shows for one answering pod.

    Attributes:
        cpu_percent: the app containers' cpu (recorder sample; None = no sample yet).
        rss_bytes: the app containers' resident memory (None = no sample yet).
        restarts: app container restarts seen by the sidecar.
        errors_per_min: error/fatal log lines in the last minute.
        errors_capped: the count reached ``MAX_ERROR_LINES``.
        connections: established TCP connections in the pod.
        pod_name: the pod name the sidecar reports.
    """

    cpu_percent: float | None
    rss_bytes: int | None
    restarts: int
    errors_per_min: int
    errors_capped: bool
    connections: int
    pod_name: str = ""


def pod_health(client: Client, timeout: float) -> PodHealth:
    """Ask one sidecar for its row (raises grpc.RpcError on failure)."""
    kw: dict[str, Any] = {"timeout": timeout, "metadata": client.metadata}
    containers = client.info.ListContainers(info_pb2.ListContainersRequest(), **kw).containers
    apps = {c.id for c in containers if c.kind == info_pb2.CONTAINER_KIND_APP}
    since = int(time.time()) - ERROR_WINDOW_S
    req = events_pb2.GetSamplesRequest()
    req.since.seconds = since
    samples = client.events.GetSamples(req, **kw).samples
    latest: dict[str, events_pb2.ContainerSample] = {}
    for s in samples:  # oldest first: the last one per container wins
        if s.container_id in apps:
            latest[s.container_id] = s
    logs = logs_pb2.FollowLogsRequest(
        follow=False, start_at=logs_pb2.START_AT_BEGINNING, limit=MAX_ERROR_LINES
    )
    logs.filter.min_level = ERROR_LEVEL  # type: ignore[assignment]
    logs.filter.time.since.seconds = since
    errors = sum(len(b.records) for b in client.logs.FollowLogs(logs, **kw))
    summary = client.network.SummarizeSockets(network_pb2.SummarizeSocketsRequest(top=1), **kw)
    established = sum(s.count for s in summary.by_state if s.state == "ESTABLISHED")
    info = client.info.GetInfo(info_pb2.GetInfoRequest(), **kw)
    return PodHealth(
        cpu_percent=sum(s.cpu_percent for s in latest.values()) if latest else None,
        rss_bytes=sum(s.rss_bytes for s in latest.values()) if latest else None,
        restarts=sum(c.restarts for c in containers if c.id in apps),
        errors_per_min=min(errors, MAX_ERROR_LINES),
        errors_capped=errors >= MAX_ERROR_LINES,
        connections=established,
        pod_name=info.pod_name,
    )


def gather(
    fleet: Fleet, timeout: float, clients: dict[str, Client], concurrency: int = 32
) -> list[Answer[PodHealth]]:
    """Every member's row (errors included), in member order.

    ``clients`` keeps each pod's channel (and port-forward) between refreshes.
    """
    return ask(fleet, pod_health, timeout=timeout, concurrency=concurrency, clients=clients)
