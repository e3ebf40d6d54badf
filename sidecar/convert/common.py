"""Conversions shared by every service."""

from __future__ import annotations

from collections.abc import Iterable

from google.protobuf.timestamp_pb2 import Timestamp

import agent
from protos import common_pb2


def timestamp(epoch: float) -> Timestamp:
    """Epoch seconds -> Timestamp (nanosecond precision)."""
    ts = Timestamp()
    ns = round(epoch * 1e9)
    ts.seconds, ts.nanos = divmod(ns, 1_000_000_000)
    return ts


def epoch(ts: Timestamp) -> float:
    """Timestamp -> epoch seconds; an unset Timestamp is 0.0."""
    return ts.seconds + ts.nanos / 1e9


def process_ref(ref: agent.ProcessRef) -> common_pb2.ProcessRef:
    return common_pb2.ProcessRef(pid=ref.pid, start_ticks=ref.start_ticks)


def unavailable(items: Iterable[agent.Unavailable]) -> list[common_pb2.Unavailable]:
    return [common_pb2.Unavailable(field=u.field, reason=u.reason) for u in items]
