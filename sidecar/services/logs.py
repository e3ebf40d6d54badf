"""Logs service: list sources, follow them as batches with exactly-once cursors.

The stream pulls: it builds one batch, yields it, and gRPC flow control holds
the generator until the client has taken it, so a slow client slows reading,
never grows a queue. On graceful shutdown the stream ends with UNAVAILABLE
and every source's cursor as JSON in the trailing metadata
``borescope-cursor``.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Iterator
from typing import Any

import grpc

import agent
from agent.errors import InvalidArgument, NotFound
from agent.results.logs import LogBatch, Source, SourceKind
from protos import common_pb2, logs_pb2, logs_pb2_grpc
from sidecar.convert import logs as convert
from sidecar.convert.common import epoch, unavailable
from sidecar.deps import Deps

SERVICE_NAMES = [logs_pb2.DESCRIPTOR.services_by_name["Logs"].full_name]
CURSOR_KEY = "borescope-cursor"
DEFAULT_BATCH = 1000
MAX_BATCH = 5000
DEFAULT_TAIL = 100
POLL_S = 0.02  # idle poll: one fstat per source; keeps p99 latency well under 50 ms
# Right after a big batch (a fast writer), poll sooner: it is not left waiting a whole
# idle interval between reads (bench_follow: ~+20% throughput). A slow writer's small
# batches keep the idle interval, so a steady trickle costs no more polls than before.
BUSY_POLL_S = 0.002
BUSY_FOR_S = 0.5
BUSY_LINES = 256
REDISCOVER_S = 5.0  # how often a follow looks for new sources


def _filter(request: logs_pb2.FollowLogsRequest) -> agent.LogFilter:
    f = request.filter
    return agent.LogFilter(
        regex=f.regex,
        invert=f.invert_regex,
        min_level=int(f.min_level),
        since=epoch(f.time.since) if f.time.HasField("since") else 0.0,
        until=epoch(f.time.until) if f.time.HasField("until") else 0.0,
        source_ids=tuple(f.source_ids),
    )


class LogsServicer(logs_pb2_grpc.LogsServicer):
    """Thin: discovery and following live in ``agent``."""

    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    def _sources(self, container_id: str) -> tuple[list[Source], list[object]]:
        cfg = self.deps.config
        found = agent.discover_sources(
            self.deps.pod,
            container_id,
            stdio_logs=cfg.stdio_logs,
            log_sources=cfg.log_sources,
            recorder="recorder" in self.deps.parts,
        )
        return list(found.sources), list(found.unavailable)

    def ListSources(
        self, request: logs_pb2.ListSourcesRequest, context: grpc.ServicerContext
    ) -> logs_pb2.ListSourcesResponse:
        cfg = self.deps.config
        found = agent.discover_sources(
            self.deps.pod,
            request.container.id,
            stdio_logs=cfg.stdio_logs,
            log_sources=cfg.log_sources,
            recorder="recorder" in self.deps.parts,
        )
        return logs_pb2.ListSourcesResponse(
            sources=[convert.source(s) for s in found.sources],
            unavailable=unavailable(found.unavailable),
        )

    def FollowLogs(
        self, request: logs_pb2.FollowLogsRequest, context: grpc.ServicerContext
    ) -> Iterator[logs_pb2.LogBatch]:
        deps = self.deps
        cfg = deps.config
        filt = _filter(request)
        keep = filt.compiled()  # InvalidArgument before any file is opened
        if request.max_batch_records > MAX_BATCH:
            raise InvalidArgument(
                f"max_batch_records {request.max_batch_records} is above the limit {MAX_BATCH}"
            )
        sources, _ = self._sources(request.container.id)
        wanted = set(filt.source_ids)
        known = {s.id for s in sources}
        missing = wanted - known
        if missing:
            raise NotFound(
                f"no log source {', '.join(sorted(missing))}; "
                f"known sources: {', '.join(sorted(known)) or 'none'} (borescope logs --sources)"
            )
        files = [
            s
            for s in sources
            if s.kind is not SourceKind.RECORDER and (not wanted or s.id in wanted)
        ]
        start = {
            logs_pb2.START_AT_BEGINNING: agent.FollowStart.BEGINNING,
            logs_pb2.START_AT_END: agent.FollowStart.END,
        }.get(request.start_at, agent.FollowStart.END)
        tail = 0
        if request.start_at == logs_pb2.START_AT_TAIL:
            tail = request.tail_lines or DEFAULT_TAIL
        full = request.detail == logs_pb2.DETAIL_FULL
        raw = request.detail == logs_pb2.DETAIL_RAW and keep is None
        opts = agent.ReaderOptions(
            start=start,
            tail_lines=tail,
            gap_on_lost=request.on_lost_cursor == common_pb2.LOST_CURSOR_GAP,
            keep=keep,
            cap=cfg.log_line_cap,
            full=full,
            raw=raw,
        )
        events: list[Any] = []
        if agent.RECORDER_SOURCE_ID in known and (not wanted or agent.RECORDER_SOURCE_ID in wanted):
            # Before the files: a bad recorder cursor raises while no file is open yet
            # (the file readers opened first leaked, one fd per source per such call).
            recorder = deps.parts["recorder"]
            events.append(recorder.log_reader(request.cursors.get(agent.RECORDER_SOURCE_ID), opts))
        readers: list[Any] = agent.open_readers(files, dict(request.cursors), opts) + events
        stream = agent.LogStream(
            readers,
            max_batch=request.max_batch_records or DEFAULT_BATCH,
            limit=request.limit,
            raw=raw,
        )
        try:
            yield from self._pump(stream, request, context, opts, wanted)
        finally:
            stream.close()

    def _pump(
        self,
        stream: agent.LogStream,
        request: logs_pb2.FollowLogsRequest,
        context: grpc.ServicerContext,
        opts: agent.ReaderOptions,
        wanted: set[str],
    ) -> Iterator[logs_pb2.LogBatch]:
        deps = self.deps
        full = opts.full
        told_live = False
        next_discovery = time.monotonic() + REDISCOVER_S
        last_data = 0.0
        while context.is_active():
            if deps.stopping.is_set():
                context.set_trailing_metadata(((CURSOR_KEY, json.dumps(stream.cursors())),))
                context.abort(
                    grpc.StatusCode.UNAVAILABLE,
                    "the sidecar is shutting down; resume with the cursors in "
                    f"the trailing metadata {CURSOR_KEY}",
                )
            batch = stream.poll()
            if batch is not None:
                if len(batch.records) + sum(c.lines for c in batch.chunks) >= BUSY_LINES:
                    last_data = time.monotonic()
                told_live = told_live or batch.live
                yield convert.batch(batch, full)
                if stream.done:
                    return
                continue
            if stream.live and not told_live:
                told_live = True  # history is over: say so once, even with nothing to send
                yield logs_pb2.LogBatch(live=True)
            if stream.live and not request.follow:
                return
            if request.follow and not wanted and time.monotonic() > next_discovery:
                next_discovery = time.monotonic() + REDISCOVER_S
                added = self._add_new_sources(stream, request, opts)
                if added:
                    yield convert.batch(
                        LogBatch((), {}, sources_added=tuple(added), live=True), full
                    )
            busy = time.monotonic() - last_data < BUSY_FOR_S
            deps.stopping.wait(BUSY_POLL_S if busy else POLL_S)

    def _add_new_sources(
        self,
        stream: agent.LogStream,
        request: logs_pb2.FollowLogsRequest,
        opts: agent.ReaderOptions,
    ) -> list[Source]:
        """Start following files that appeared since the stream began (from their start)."""
        have = {r.id for r in stream.readers}
        try:
            sources, _ = self._sources(request.container.id)
        except NotFound:
            return []  # the container is restarting: look again next time
        new = [s for s in sources if s.id not in have and s.kind is not SourceKind.RECORDER]
        if not new:
            return []
        fresh = dataclasses.replace(opts, start=agent.FollowStart.BEGINNING, tail_lines=0)
        added: list[Source] = []
        for s in new:
            try:
                stream.readers.extend(agent.open_readers([s], {}, fresh))
            except (NotFound, InvalidArgument):
                continue  # vanished or became something else between discovery and open
            added.append(s)
        return added


def register(server: grpc.Server, deps: Deps) -> None:
    logs_pb2_grpc.add_LogsServicer_to_server(LogsServicer(deps), server)
