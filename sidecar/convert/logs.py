"""Logs service conversions: sources, records and batches.

``batch()`` is on the follow hot path: it uses ``records.add`` with keyword
arguments (measured ~3x cheaper than building Record objects and passing a
list) and sets the Timestamp submessage only in DETAIL_FULL (``time_ns`` is
always set). Raw chunks (DETAIL_RAW) are copied as they are: a handful of
fields per run of lines.
"""

from __future__ import annotations

from agent.results.logs import LogBatch, RecordKind, Source
from protos import common_pb2, logs_pb2
from sidecar.convert.common import timestamp

_LINE = int(RecordKind.LINE)


def source(s: Source) -> logs_pb2.Source:
    """A discovered source."""
    msg = logs_pb2.Source(
        id=s.id,
        kind=int(s.kind),  # type: ignore[arg-type]
        path=s.path,
        container_id=s.container_id,
        pids=s.pids,
        size=s.size,
        format=int(s.format),  # type: ignore[arg-type]
        description=s.description,
    )
    if s.mtime:
        msg.mtime.CopyFrom(timestamp(s.mtime))
    return msg


def batch(b: LogBatch, full: bool) -> logs_pb2.LogBatch:
    """A batch of records with the cursors after it."""
    msg = logs_pb2.LogBatch(cursors=b.cursors, live=b.live)
    add = msg.records.add
    for r in b.records:
        raw = r.raw
        if r.kind != _LINE:
            rec = add(
                time_ns=int(r.time * 1e9),
                time_is_receive=r.time_is_receive,
                source_id=r.source_id,
                level=r.level,
                kind=r.kind,
                message=r.message,
                offset=r.offset,
                seq=r.seq,
            )
            if r.kind == RecordKind.GAP:
                rec.gap.CopyFrom(
                    common_pb2.Gap(lost=r.lost, reason=r.message, time=timestamp(r.time))
                )
            rec.time.CopyFrom(timestamp(r.time))
            if full and r.fields:
                rec.fields.update(r.fields)
            continue
        if raw is r.message and not (r.time_is_receive or r.truncated or r.stream or full):
            # The common plain line: only the fields that differ from their defaults
            # (each keyword costs; measured ~0.7 µs a record saved).
            add(
                time_ns=int(r.time * 1e9),
                source_id=r.source_id,
                level=r.level,
                message=raw,
                offset=r.offset,
                seq=r.seq,
            )
            continue
        rec = add(
            time_ns=int(r.time * 1e9),
            time_is_receive=r.time_is_receive,
            source_id=r.source_id,
            level=r.level,
            message=r.message,
            raw="" if raw is r.message or raw == r.message else raw,
            truncated=r.truncated,
            stream=r.stream,
            offset=r.offset,
            seq=r.seq,
        )
        if full:
            rec.time.CopyFrom(timestamp(r.time))
            if r.fields:
                rec.fields.update(r.fields)
    if b.chunks:
        add_chunk = msg.chunks.add
        for c in b.chunks:
            add_chunk(
                source_id=c.source_id,
                offset=c.offset,
                data=c.data,
                lines=c.lines,
                seq=c.seq,
                time_ns=int(c.time * 1e9),
            )
    if b.sources_added:
        msg.sources_added.extend(source(s) for s in b.sources_added)
    if b.sources_removed:
        msg.sources_removed.extend(b.sources_removed)
    return msg
