"""Logs and events of many pods as one stream, by time, each line prefixed by its pod.

History (no ``-f``): each pod is asked for its records (bounded by ``--tail``
and ``MAX_RECORDS_PER_POD``), then they are merged by (time, pod, source,
seq). Following: one stream per pod, each in its own thread, feeding a
bounded queue (a slow terminal slows the streams; memory stays bounded); the
merge window of ``tui.merge.Merger`` orders lines that arrive out of order.
"""

from __future__ import annotations

import argparse
import queue
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import grpc

from protos import common_pb2, events_pb2, logs_pb2
from tui.cli.common import EXIT_USAGE, CliError, to_dict
from tui.client import Client, ConnectError
from tui.fleet import merge
from tui.fleet.fanout import ask, describe
from tui.fleet.members import Fleet
from tui.merge import Merger
from tui.sanitize import sanitize

#: Records kept per pod for a history query; beyond it the pod's answer is cut (and says so).
MAX_RECORDS_PER_POD = 20_000
#: Batches waiting to be printed, across all pods.
QUEUE_BATCHES = 256


def _log_request(
    args: argparse.Namespace, client: Client, timeout: float
) -> tuple[logs_pb2.FollowLogsRequest, dict[str, str]]:
    from tui.cli.logs import _request, _resolve_sources, _short_names

    listing = client.logs.ListSources(
        logs_pb2.ListSourcesRequest(
            container=common_pb2.ContainerSelector(id=args.container or "")
        ),
        metadata=client.metadata,
        timeout=timeout,
    )
    sources = list(listing.sources)
    req = _request(args, _resolve_sources(args.source or [], sources))
    return req, _short_names(sources)


def _line(
    pod: str, width: int, r: merge.PodRecord, short: dict[str, dict[str, str]], json_out: bool
) -> str:
    from tui.cli.logs import record_line

    if json_out:
        import json

        return (
            json.dumps({"pod": pod, **to_dict(r.record)}, ensure_ascii=False, separators=(",", ":"))
            + "\n"
        )
    return f"{sanitize(pod):<{width}}  {record_line(r.record, short.get(pod, {}))}\n"


def history_logs(args: argparse.Namespace, fleet: Fleet) -> int:
    """``logs`` without -f: every pod's recent lines merged by time."""
    from tui.fleet.cli import concurrency, report

    def question(
        client: Client, timeout: float
    ) -> tuple[list[logs_pb2.Record], dict[str, str], bool]:
        req, short = _log_request(args, client, timeout)
        req.limit = MAX_RECORDS_PER_POD
        records: list[logs_pb2.Record] = []
        for batch in client.logs.FollowLogs(req, metadata=client.metadata, timeout=timeout):
            short.update({s.id: (s.path.rsplit("/", 1)[-1] or s.id) for s in batch.sources_added})
            records.extend(batch.records)
        return records, short, len(records) >= MAX_RECORDS_PER_POD

    answers = ask(fleet, question, timeout=args.timeout, concurrency=concurrency(args))
    width = max((len(a.member) for a in answers), default=0)
    short = {a.member: a.value[1] for a in answers if a.value}
    per_pod = [merge.tag_records(a.member, a.value[0]) for a in answers if a.value]
    out = sys.stdout
    for r in merge.merge_records(per_pod):
        out.write(_line(r.pod, width, r, short, args.output == "json"))
    for a in answers:
        if a.value and a.value[2]:
            sys.stderr.write(
                f"borescope: {sanitize(a.member)}: only the first {MAX_RECORDS_PER_POD} lines "
                "(narrow --since or --tail)\n"
            )
    return report(answers)


def _stream_all(
    fleet: Fleet,
    args: argparse.Namespace,
    stream: Callable[[Client, str], Iterator[list[merge.PodRecord]]],
    emit: Callable[[list[merge.PodRecord]], None],
) -> int:
    """Run ``stream`` for every member at once, merging what they yield into ``emit``."""
    from tui.fleet.cli import concurrency

    askable = [m for m in fleet.members if not m.error]
    if len(askable) > concurrency(args):
        raise CliError(
            f"following {len(askable)} pods needs one stream each: raise --fleet-concurrency "
            f"to {len(askable)} or narrow the selector",
            EXIT_USAGE,
        )
    q: queue.Queue[tuple[str, list[merge.PodRecord] | str]] = queue.Queue(QUEUE_BATCHES)
    stop = threading.Event()
    clients: list[Client] = []
    lock = threading.Lock()

    for m in fleet.members:
        if m.error:
            sys.stderr.write(f"borescope: {sanitize(m.name)}: {sanitize(m.error)}\n")
    threads = [
        threading.Thread(
            target=_worker,
            args=(fleet, m.name),
            kwargs={
                "stream": stream,
                "q": q,
                "stop": stop,
                "clients": clients,
                "lock": lock,
                "timeout": args.timeout,
            },
            daemon=True,
        )
        for m in askable
    ]
    real_err = sys.stderr
    sys.stderr = _PodStderr(real_err)
    for t in threads:
        t.start()
    merger = Merger(window_s=0.25)
    live = len(threads)
    failed = 0
    try:
        while live:
            try:
                name, item = q.get(timeout=0.1)
            except queue.Empty:
                item = []
                name = ""
            now = time.monotonic_ns()
            if isinstance(item, str):
                live -= 1
                failed += item != "stream ended"
                sys.stderr.write(f"borescope: {sanitize(name)}: {sanitize(item)}\n")
            elif item:
                merger.push(item, now)
            emit(merger.pop_ready(now))
    finally:
        sys.stderr = real_err
        stop.set()
        with lock:
            for c in clients:
                c.close()
        emit(merger.pop_ready(0, flush=True))
    return 1 if failed or any(m.error for m in fleet.members) else 0


class _PodStderr:
    """stderr that names the pod in lines written from a pod's stream thread.

    ``follow_batches`` says "borescope: connection lost ...; resuming" when a
    stream drops; with many pods the reader needs to know which one.
    """

    def __init__(self, real: Any) -> None:
        self.real = real
        self.local = threading.local()

    def write(self, text: str) -> int:
        pod = getattr(self.local, "pod", "")
        if pod and text.startswith("borescope: "):
            text = f"borescope: {sanitize(pod)}: {text[len('borescope: ') :]}"
        return int(self.real.write(text))

    def flush(self) -> None:
        self.real.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


def _worker(
    fleet: Fleet,
    name: str,
    *,
    stream: Callable[[Client, str], Iterator[list[merge.PodRecord]]],
    q: queue.Queue[tuple[str, list[merge.PodRecord] | str]],
    stop: threading.Event,
    clients: list[Client],
    lock: threading.Lock,
    timeout: float,
) -> None:
    """One pod's stream into the shared queue; a str item says why it ended."""
    if isinstance(sys.stderr, _PodStderr):
        sys.stderr.local.pod = name
    member = next(m for m in fleet.members if m.name == name)
    try:
        client = fleet.open(member)
        with lock:
            clients.append(client)
        for batch in stream(client, name):
            while not stop.is_set():
                try:
                    q.put((name, batch), timeout=0.2)
                    break
                except queue.Full:
                    continue
        q.put((name, "stream ended"))
    except grpc.RpcError as e:
        if not stop.is_set():
            q.put((name, describe(e, timeout)))
    except (ConnectError, CliError, ValueError) as e:
        if not stop.is_set():
            q.put((name, str(e)))


def follow_logs(args: argparse.Namespace, fleet: Fleet) -> int:
    """``logs -f``: every pod's lines as they come, merged by time, prefixed by pod."""
    from tui.cli.logs import follow_batches

    width = max((len(m.name) for m in fleet.members), default=0)
    short: dict[str, dict[str, str]] = {}

    def stream(client: Client, pod: str) -> Iterator[list[merge.PodRecord]]:
        req, names = _log_request(args, client, args.timeout)
        short[pod] = names
        for batch in follow_batches(client, req, None):
            names.update({s.id: (s.path.rsplit("/", 1)[-1] or s.id) for s in batch.sources_added})
            yield merge.tag_records(pod, batch.records)

    def emit(records: list[merge.PodRecord]) -> None:
        if records:
            sys.stdout.write(
                "".join(_line(r.pod, width, r, short, args.output == "json") for r in records)
            )
            sys.stdout.flush()

    return _stream_all(fleet, args, stream, emit)


def follow_events(args: argparse.Namespace, fleet: Fleet) -> int:
    """``events -f``: every pod's events as they come, merged by time."""
    from tui.cli.logs import event_line

    width = max((len(m.name) for m in fleet.members), default=0)

    def stream(client: Client, pod: str) -> Iterator[list[merge.PodRecord]]:
        req = events_pb2.FollowEventsRequest(follow=True, limit=args.tail)
        for b in client.events.FollowEvents(req, metadata=client.metadata):
            yield [
                merge.PodRecord(e.time.seconds * 1_000_000_000 + e.time.nanos, pod, e.seq, pod, e)
                for e in b.events
            ]

    def emit(records: list[merge.PodRecord]) -> None:
        out = sys.stdout
        for r in records:
            e: Any = r.record
            if args.output == "json":
                import json

                out.write(json.dumps({"pod": r.pod, **to_dict(e)}, separators=(",", ":")) + "\n")
            else:
                out.write(f"{sanitize(r.pod):<{width}}  {event_line(e)}\n")
        out.flush()

    return _stream_all(fleet, args, stream, emit)
