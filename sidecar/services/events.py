"""Events service: the flight recorder's ring (history + follow) and samples.

The recorder is created here at registration, stored in
``deps.parts["recorder"]`` (the Logs service merges it as a source) and
stopped by ``deps.close()``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import grpc

import agent
from agent.errors import BorescopeError
from agent.results.events import Event
from agent.results.logs import Level, SourceKind
from protos import common_pb2, events_pb2, events_pb2_grpc
from sidecar.convert import events as convert
from sidecar.convert.common import epoch, timestamp
from sidecar.deps import Deps
from sidecar.interceptors.limits import CURSOR_KEY

SERVICE_NAMES = [events_pb2.DESCRIPTOR.services_by_name["Events"].full_name]
MAX_BATCH = 500
WAIT_S = 0.25  # a follow wakes at least this often to check for cancel and shutdown


class EventsServicer(events_pb2_grpc.EventsServicer):
    """Thin: the recorder lives in ``agent``."""

    def __init__(self, deps: Deps, recorder: agent.Recorder) -> None:
        self.deps = deps
        self.recorder = recorder

    def FollowEvents(
        self, request: events_pb2.FollowEventsRequest, context: grpc.ServicerContext
    ) -> Iterator[events_pb2.EventBatch]:
        ring = self.recorder.ring
        after, lost = agent.resume_point(
            ring, request.cursor, request.on_lost_cursor == common_pb2.LOST_CURSOR_GAP
        )
        since = epoch(request.since) if request.HasField("since") else 0.0
        kinds = {int(k) for k in request.kinds}
        if after < 0:
            after = ring.first_seq - 1
            if request.limit and not since:
                after = max(after, ring.next_seq - 1 - request.limit)
        gap = events_pb2.EventBatch()
        if lost:
            gap.gap.lost = lost
            gap.gap.reason = (
                f"{lost} events were evicted from the recorder's ring (config recorder_ring_size)"
            )
            gap.gap.time.CopyFrom(timestamp(time.time()))
            gap.cursor = agent.event_cursor(after)
            yield gap
        live = False
        sent = 0
        while context.is_active():
            if self.deps.stopping.is_set():
                context.set_trailing_metadata(((CURSOR_KEY, agent.event_cursor(after)),))
                context.abort(
                    grpc.StatusCode.UNAVAILABLE,
                    f"the sidecar is shutting down; resume with the cursor in {CURSOR_KEY}",
                )
            events, evicted = ring.after(after, MAX_BATCH)
            if events:
                after = events[-1].seq
                keep = [e for e in events if _wanted(e, kinds, since)]
                if not request.follow and request.limit and not request.cursor:
                    keep = keep[: max(0, request.limit - sent)]
                batch = events_pb2.EventBatch(
                    events=[convert.event(e) for e in keep], cursor=agent.event_cursor(after)
                )
                if evicted:
                    batch.gap.lost = evicted
                    batch.gap.reason = f"{evicted} events were evicted while this stream was behind"
                sent += len(keep)
                batch.live = live
                yield batch
                continue
            if not live:
                live = True
                yield events_pb2.EventBatch(cursor=agent.event_cursor(after), live=True)
            if not request.follow:
                return
            ring.wait(after, WAIT_S)

    def GetSamples(
        self, request: events_pb2.GetSamplesRequest, context: grpc.ServicerContext
    ) -> events_pb2.GetSamplesResponse:
        since = epoch(request.since) if request.HasField("since") else 0.0
        samples = self.recorder.samples(since, request.container.id)
        return events_pb2.GetSamplesResponse(
            samples=[convert.sample(s) for s in samples],
            interval_ms=round(self.recorder.interval * 1000),
        )


def _wanted(e: Event, kinds: set[int], since: float) -> bool:
    return (not kinds or int(e.kind) in kinds) and e.time >= since


def make_recorder(deps: Deps, *, start: bool = True) -> agent.Recorder:
    """The recorder with error-burst watching over the container's log files."""
    cfg = deps.config
    errors_only = agent.LogFilter(min_level=int(Level.ERROR)).compiled()
    opts = agent.ReaderOptions(
        start=agent.FollowStart.END, keep=errors_only, cap=cfg.log_line_cap, full=False
    )

    def log_sources(container_id: str) -> list[Any]:
        try:
            found = agent.discover_sources(
                deps.pod, container_id, stdio_logs=cfg.stdio_logs, log_sources=cfg.log_sources
            )
        except BorescopeError:
            return []  # the container went away between sample and discovery
        files = [s for s in found.sources if s.kind is not SourceKind.RECORDER]
        readers: list[Any] = []
        for s in files:
            try:
                readers += agent.open_readers([s], {}, opts)
            except BorescopeError:
                continue  # vanished or unreadable: the next discovery tries again
        return readers

    return agent.Recorder(
        deps.pod,
        interval=cfg.recorder_interval_s,
        ring_size=cfg.recorder_ring_size,
        log_sources=log_sources,
        start=start,
    )


def register(server: grpc.Server, deps: Deps) -> None:
    recorder = deps.parts.get("recorder")
    if recorder is None:
        recorder = deps.parts["recorder"] = make_recorder(deps)
    events_pb2_grpc.add_EventsServicer_to_server(EventsServicer(deps, recorder), server)
