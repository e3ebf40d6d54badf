"""``borescope logs`` and ``borescope events``: the merged log stream and the recorder's events.

Following survives a dropped connection or a restarted sidecar: the command
resumes from the cursors of the last batch it printed (or those the sidecar
put in the trailer on shutdown), so no line is printed twice or skipped.

``logs -f`` without --level/--grep/--since/--parse and without ``-o json``
follows in raw mode (DETAIL_RAW): lines are printed as the target wrote them
(sanitised), prefixed with ``[source]`` unless one source was chosen, each
source in file order and sources interleaved as their lines arrive. That is
the fast path (no per-line work on either side). Everything else parses every
line (time, level) and merges the sources by time.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import grpc

from protos import common_pb2, events_pb2, logs_pb2
from tui.cli.common import (
    CliError,
    add_connection_args,
    add_output_arg,
    print_json_line,
    print_table,
    to_dict,
    with_client,
)
from tui.cli.logs_raw import batch_items, render_chunk
from tui.client import Client
from tui.merge import Merger
from tui.sanitize import sanitize

LEVELS = {"trace": 1, "debug": 2, "info": 3, "warn": 4, "warning": 4, "error": 5, "fatal": 6}
LEVEL_NAMES = {0: "-", 1: "TRACE", 2: "DEBUG", 3: "INFO", 4: "WARN", 5: "ERROR", 6: "FATAL"}
CURSOR_KEY = "borescope-cursor"
RETRY_S = (0.2, 0.5, 1.0, 2.0, 5.0)
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_since(text: str, now: float | None = None) -> float:
    """Epoch seconds for ``--since``: a duration back from now (90s, 5m, 2h, 1d) or an ISO time.

    Raises:
        CliError: neither (exit code 2).
    """
    now = time.time() if now is None else now
    m = _DURATION.match(text.strip())
    if m:
        return now - float(m.group(1)) * _UNITS[m.group(2)]
    try:
        dt = datetime.fromisoformat(text.strip())
    except ValueError:
        raise CliError(
            f"--since {text!r}: give a duration like 30s, 5m, 2h, 1d or a time like 2024-05-01T12:00:00Z",
            2,
        ) from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


def fmt_time(ns: int) -> str:
    """A record time for humans (UTC, milliseconds)."""
    return datetime.fromtimestamp(ns / 1e9, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def record_line(r: logs_pb2.Record, short: dict[str, str]) -> str:
    """One record as a terminal line (every target string sanitized)."""
    text = sanitize(r.raw or r.message)
    src = short.get(r.source_id, r.source_id)
    t = fmt_time(r.time_ns)
    if r.time_is_receive:
        t += "~"  # "~": no timestamp in the line; this is when borescope read it
    if r.kind == logs_pb2.RECORD_KIND_GAP:
        return f"{t} GAP   [{sanitize(src)}] !! {sanitize(r.gap.reason or r.message)}"
    if r.kind == logs_pb2.RECORD_KIND_NOTICE:
        return f"{t} NOTE  [{sanitize(src)}] -- {text}"
    return f"{t} {LEVEL_NAMES.get(r.level, '-'):<5} [{sanitize(src)}] {text}"


def _short_names(sources: list[logs_pb2.Source]) -> dict[str, str]:
    return {s.id: (s.path.rsplit("/", 1)[-1] or s.id) for s in sources}


def _resolve_sources(wanted: list[str], sources: list[logs_pb2.Source]) -> list[str]:
    """Source ids for ``--source`` values: an id, a path, or a file name."""
    out: list[str] = []
    for w in wanted:
        hits = [s.id for s in sources if w in (s.id, s.path, s.path.rsplit("/", 1)[-1])]
        if not hits:
            names = ", ".join(sorted(s.path or s.id for s in sources)) or "none"
            raise CliError(f"no log source {w!r}; sources: {names}")
        out += hits
    return out


def raw_mode(args: argparse.Namespace) -> bool:
    """Whether ``logs`` follows in raw mode: -f, text output, nothing that needs parsed lines."""
    parsed = getattr(args, "parse", False) or args.output == "json"
    return bool(args.follow and not (parsed or args.grep or args.level or args.since))


def _request(
    args: argparse.Namespace, source_ids: list[str], *, raw: bool = False
) -> logs_pb2.FollowLogsRequest:
    """The FollowLogs request for ``logs`` (``raw``: DETAIL_RAW, see :func:`raw_mode`)."""
    if raw:
        detail = logs_pb2.DETAIL_RAW
    else:
        detail = logs_pb2.DETAIL_FULL if args.output == "json" else logs_pb2.DETAIL_BASIC
    req = logs_pb2.FollowLogsRequest(
        follow=args.follow,
        detail=detail,
        tail_lines=args.tail,
        max_batch_records=5000 if raw else 1000,
    )
    if args.tail <= 0:
        req.start_at = logs_pb2.START_AT_END  # -n 0: only new lines (tail_lines 0 means 100)
    req.container.id = args.container or ""
    if args.since:
        since = parse_since(args.since)
        req.filter.time.since.seconds = int(since)
        req.filter.time.since.nanos = int((since % 1) * 1e9)
        req.start_at = logs_pb2.START_AT_BEGINNING
    if args.grep:
        req.filter.regex = args.grep
    if args.level:
        req.filter.min_level = LEVELS[args.level]  # type: ignore[assignment]
    req.filter.source_ids.extend(source_ids)
    return req


def follow_batches(
    client: Client, req: logs_pb2.FollowLogsRequest, timeout: float | None
) -> Iterator[logs_pb2.LogBatch]:
    """Batches of a FollowLogs call; when following, reconnects from the cursors on UNAVAILABLE."""
    cursors: dict[str, str] = dict(req.cursors)
    attempt = 0
    while True:
        req.ClearField("cursors")
        req.cursors.update(cursors)
        call = client.logs.FollowLogs(req, metadata=client.metadata, timeout=timeout)
        try:
            for batch in call:
                attempt = 0
                yield batch
                cursors.update(batch.cursors)  # only after the caller has printed it
            return
        except grpc.RpcError as e:
            if not req.follow or e.code() != grpc.StatusCode.UNAVAILABLE:
                raise
            trailer = dict(e.trailing_metadata() or ())  # type: ignore[attr-defined]
            if CURSOR_KEY in trailer:
                cursors.update(json.loads(trailer[CURSOR_KEY]))
            delay = RETRY_S[min(attempt, len(RETRY_S) - 1)]
            attempt += 1
            sys.stderr.write(
                f"borescope: connection lost ({e.code().name}); resuming in {delay:g}s\n"
            )
            time.sleep(delay)


def _print_records(records: list[Any], args: argparse.Namespace, short: dict[str, str]) -> None:
    out = sys.stdout
    for r in records:
        if args.output == "json":
            print_json_line(to_dict(r))
        else:
            out.write(record_line(r, short) + "\n")
    out.flush()


@with_client
def run_logs(args: argparse.Namespace, client: Client) -> int:
    """borescope logs."""
    listing = client.logs.ListSources(
        logs_pb2.ListSourcesRequest(
            container=common_pb2.ContainerSelector(id=args.container or "")
        ),
        metadata=client.metadata,
        timeout=args.timeout,
    )
    sources = list(listing.sources)
    if args.sources:
        if args.output == "json":
            print_json_line(to_dict(listing))
        else:
            print_table(
                ("ID", "KIND", "SIZE", "DESCRIPTION"),
                (
                    (
                        sanitize(s.id),
                        logs_pb2.SourceKind.Name(s.kind)[12:].lower(),
                        s.size,
                        sanitize(s.description),
                    )
                    for s in sources
                ),
                right=(2,),
            )
        return 0
    ids = _resolve_sources(args.source or [], sources)
    short = _short_names(sources)
    if raw_mode(args):
        return _follow_raw(client, _request(args, ids, raw=True), short, prefixed=len(ids) != 1)
    req = _request(args, ids)
    merger = Merger(window_s=0.25 if args.follow else 0.0)
    for batch in follow_batches(client, req, None if args.follow else args.timeout * 6):
        short.update(_short_names(list(batch.sources_added)))
        now = time.monotonic_ns()
        merger.push(list(batch.records), now)
        _print_records(merger.pop_ready(now, flush=not args.follow or batch.live), args, short)
    _print_records(merger.pop_ready(0, flush=True), args, short)
    return 0


def _follow_raw(
    client: Client, req: logs_pb2.FollowLogsRequest, short: dict[str, str], *, prefixed: bool
) -> int:
    """``logs -f`` in raw mode: chunks go to stdout in bulk, other records as lines."""
    out = sys.stdout.buffer
    prefixes: dict[str, bytes] = {}

    def prefix(sid: str) -> bytes:
        p = prefixes.get(sid)
        if p is None:
            p = prefixes[sid] = f"[{sanitize(short.get(sid, sid))}] ".encode() if prefixed else b""
        return p

    for batch in follow_batches(client, req, None):
        if batch.sources_added:
            short.update(_short_names(list(batch.sources_added)))
        parts: list[bytes] = []
        for item in batch_items(batch):
            if isinstance(item, logs_pb2.RawChunk):
                parts.append(render_chunk(item, prefix(item.source_id)))
            elif item.kind == logs_pb2.RECORD_KIND_LINE:  # a long line or a CRI line
                text = sanitize(item.raw or item.message)
                parts.append(prefix(item.source_id) + text.encode() + b"\n")
            else:  # gaps, notices, recorder events: borescope's own lines, with a time
                parts.append(record_line(item, short).encode() + b"\n")
        if parts:
            out.write(parts[0] if len(parts) == 1 else b"".join(parts))
            out.flush()
    return 0


def event_line(e: events_pb2.Event) -> str:
    """One event as a terminal line."""
    sev = ("info", "WARN", "CRIT")[e.severity] if e.severity < 3 else "?"
    kind = events_pb2.EventKind.Name(e.kind)[11:].lower()
    t = fmt_time(e.time.seconds * 1_000_000_000 + e.time.nanos)
    code = f" exit={e.exit_code}" if e.HasField("exit_code") else ""
    return f"{t} {sev:<4} {kind:<20} {sanitize(e.message)}{code}"


@with_client
def run_events(args: argparse.Namespace, client: Client) -> int:
    """borescope events."""
    req = events_pb2.FollowEventsRequest(follow=args.follow, limit=args.tail)
    if args.since:
        since = parse_since(args.since)
        req.since.seconds = int(since)
        req.limit = 0
    cursor = ""
    attempt = 0
    while True:
        req.cursor = cursor
        try:
            for b in client.events.FollowEvents(
                req, metadata=client.metadata, timeout=None if args.follow else args.timeout
            ):
                attempt = 0
                if b.HasField("gap") and b.gap.lost:
                    sys.stdout.write(f"!! {b.gap.lost} events missing: {sanitize(b.gap.reason)}\n")
                for e in b.events:
                    if args.output == "json":
                        print_json_line(to_dict(e))
                    else:
                        sys.stdout.write(event_line(e) + "\n")
                sys.stdout.flush()
                cursor = b.cursor or cursor
            return 0
        except grpc.RpcError as e:
            if not args.follow or e.code() != grpc.StatusCode.UNAVAILABLE:
                raise
            delay = RETRY_S[min(attempt, len(RETRY_S) - 1)]
            attempt += 1
            sys.stderr.write(f"borescope: connection lost; resuming in {delay:g}s\n")
            time.sleep(delay)


def _level(text: str) -> str:
    t = text.lower()
    if t not in LEVELS:
        raise argparse.ArgumentTypeError(f"unknown level {text!r}; one of {', '.join(LEVELS)}")
    return t


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``logs`` and ``events``."""
    p = sub.add_parser("logs", help="show and follow the target's logs (all sources merged)")
    p.add_argument("-f", "--follow", action="store_true", help="keep following new lines")
    p.add_argument(
        "--source",
        action="append",
        metavar="S",
        help="only this source (id, path or file name); repeatable",
    )
    p.add_argument(
        "--level", type=_level, metavar="L", help="minimum level: trace debug info warn error fatal"
    )
    p.add_argument("--grep", metavar="RE", help="only lines matching this regular expression")
    p.add_argument(
        "--since",
        metavar="DURATION",
        help="from this long ago (30s, 5m, 2h) or this time (ISO 8601)",
    )
    p.add_argument(
        "-n",
        "--tail",
        type=int,
        default=100,
        metavar="N",
        help="last N lines per source first (default 100)",
    )
    p.add_argument(
        "--parse",
        action="store_true",
        help="with -f: parse every line (time, level) and merge sources by time, as without -f "
        "(implied by --level, --grep, --since and -o json); slower than the raw default",
    )
    p.add_argument("--sources", action="store_true", help="list the log sources and exit")
    p.add_argument("--container", default="", help="container id or name (default: the app)")
    add_output_arg(p)
    add_connection_args(p)
    p.set_defaults(func=run_logs)

    e = sub.add_parser("events", help="show and follow the flight recorder's events")
    e.add_argument("-f", "--follow", action="store_true", help="keep following new events")
    e.add_argument(
        "--since", metavar="DURATION", help="from this long ago (30s, 5m, 2h) or this time"
    )
    e.add_argument(
        "-n",
        "--tail",
        type=int,
        default=0,
        metavar="N",
        help="only the last N events (default: all kept)",
    )
    add_output_arg(e)
    add_connection_args(e)
    e.set_defaults(func=run_events)
