"""Events service conversions: recorder events and container samples."""

from __future__ import annotations

from agent.results.events import ContainerSample, Event
from protos import events_pb2
from sidecar.convert.common import process_ref, timestamp


def event(e: Event) -> events_pb2.Event:
    """One recorder event."""
    msg = events_pb2.Event(
        seq=e.seq,
        time=timestamp(e.time),
        kind=int(e.kind),  # type: ignore[arg-type]
        severity=int(e.severity),  # type: ignore[arg-type]
        container_id=e.container_id,
        message=e.message,
        attrs=e.attrs,
    )
    if e.process is not None:
        msg.process.CopyFrom(process_ref(e.process))
    if e.exit_code is not None:
        msg.exit_code = e.exit_code
    return msg


def sample(s: ContainerSample) -> events_pb2.ContainerSample:
    """One container sample."""
    msg = events_pb2.ContainerSample(
        time=timestamp(s.time),
        container_id=s.container_id,
        cpu_percent=s.cpu_percent,
        rss_bytes=s.rss_bytes,
        processes=s.processes,
        fds=s.fds,
    )
    if s.memory_cgroup_bytes is not None:
        msg.memory_cgroup_bytes = s.memory_cgroup_bytes
    return msg
