"""Fleet versions of the read commands: merged where merging means something, sections elsewhere.

``run_fleet`` is what ``tui.cli.common.with_client`` calls when the flags
name several sidecars. ``ps``, ``logs``, ``events`` and ``net`` (sockets,
listen, summary) merge across pods; every other read command runs once per
pod (concurrently) and prints one section per pod. Commands that change
something (``kill``, ``cp``) refuse a fleet. Failed pods are listed on stderr,
one line each, and the exit code is 1 when any pod failed.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import Any

from protos import common_pb2, events_pb2, info_pb2, network_pb2, processes_pb2
from tui.cli.common import EXIT_USAGE, CliError, print_json, print_table, to_dict
from tui.client import Client
from tui.fleet import merge
from tui.fleet.capture import run_sections
from tui.fleet.fanout import CONCURRENCY, Answer, ask
from tui.fleet.follow import follow_events, follow_logs, history_logs
from tui.fleet.members import Fleet
from tui.sanitize import sanitize
from tui.units import human_bytes

#: Commands that change the target: one pod at a time, named explicitly.
WRITES = {"kill": "sends a signal", "cp": "writes local files"}
#: Default rows in a merged process table.
TOP = 50


def run_fleet(
    args: argparse.Namespace, fleet: Fleet, run: Callable[[argparse.Namespace, Client], int]
) -> int:
    """Run the command ``args`` names on every member of ``fleet``; close the fleet."""
    try:
        command = getattr(args, "command", "")
        if command in WRITES:
            raise CliError(
                f"{command} {WRITES[command]}: it runs on one pod at a time; name it with "
                "--target pod/NAME or a single --addr",
                EXIT_USAGE,
            )
        handler = _merged(args)
        if handler is not None:
            return handler(args, fleet)
        if getattr(args, "follow", False):
            raise CliError(
                f"{command} -f follows one pod at a time; name it with --target pod/NAME",
                EXIT_USAGE,
            )
        return report(run_sections(args, fleet, run, concurrency(args)))
    finally:
        fleet.close()


def _merged(args: argparse.Namespace) -> Callable[[argparse.Namespace, Fleet], int] | None:
    command = getattr(args, "command", "")
    if command == "ps" and args.pid is None and not args.tree:
        return fleet_ps
    if command == "logs" and not args.sources:
        return follow_logs if args.follow else history_logs
    if command == "events":
        return follow_events if args.follow else fleet_events
    if command == "net" and args.view in ("summary", "sockets", "listen"):
        return fleet_summary if args.view == "summary" else fleet_sockets
    return None


def concurrency(args: argparse.Namespace) -> int:
    """Pods asked at once (--fleet-concurrency)."""
    return int(getattr(args, "fleet_concurrency", None) or CONCURRENCY)


def report(answers: Sequence[Answer[Any]], *, what: str = "pods answered") -> int:
    """Each failed pod on stderr, then how many answered; the exit code (1 = any failed)."""
    failed = [a for a in answers if not a.ok]
    for a in failed:
        sys.stderr.write(f"borescope: {sanitize(a.member)}: {sanitize(a.error)}\n")
    if failed:
        sys.stderr.write(f"borescope: {len(answers) - len(failed)} of {len(answers)} {what}\n")
    sys.stdout.flush()
    return 1 if failed else 0


def pods_json(answers: Sequence[Answer[Any]]) -> list[dict[str, Any]]:
    """Per-pod status for JSON output."""
    return [
        {"pod": a.member, "ok": a.ok, "error": a.error, "seconds": round(a.seconds, 3)}
        for a in answers
    ]


# -- ps ---------------------------------------------------------------------------


def fleet_ps(args: argparse.Namespace, fleet: Fleet) -> int:
    """Top processes across pods (by cpu unless --sort says otherwise), with a POD column."""
    from tui.cli.ps import HEADERS, SORTS

    sort = "cpu" if args.sort == "pid" else args.sort
    top = int(getattr(args, "fleet_top", None) or TOP)

    def question(
        client: Client, timeout: float
    ) -> tuple[list[processes_pb2.Process], dict[str, str]]:
        resp = client.processes.ListProcesses(
            processes_pb2.ListProcessesRequest(
                container=common_pb2.ContainerSelector(id=args.container),
                sort=SORTS[sort],
                descending=True,
                # Only the top N of each pod can make the merged top N.
                page=common_pb2.PageRequest(page_size=top),
                fields=["fds"],
            ),
            timeout=timeout,
            metadata=client.metadata,
        )
        names = client.info.ListContainers(
            info_pb2.ListContainersRequest(include_sidecar=True, include_infra=True),
            timeout=timeout,
            metadata=client.metadata,
        )
        return list(resp.processes), {c.id: c.name for c in names.containers}

    answers = ask(fleet, question, timeout=args.timeout, concurrency=concurrency(args))
    procs = [Answer(a.member, a.value[0] if a.value else None, a.error) for a in answers]
    names = {a.member: a.value[1] for a in answers if a.value}
    rows = merge.top_processes(procs, top, sort)
    if args.output == "json":
        print_json(
            {
                "pods": pods_json(answers),
                "processes": [{"pod": pod, **to_dict(p)} for pod, p in rows],
            }
        )
        return report(answers)
    print_table(
        ["POD", *HEADERS],
        [
            [
                pod,
                p.ref.pid,
                p.ppid,
                p.user,
                p.state[:1],
                f"{p.cpu_percent:.1f}" if p.HasField("cpu_percent") else "?",
                human_bytes(p.rss_bytes) if p.HasField("rss_bytes") else "?",
                p.threads,
                p.fds if p.HasField("fds") else "?",
                names.get(pod, {}).get(p.container_id, p.container_id),
                " ".join(p.cmdline) if p.cmdline else f"[{p.name}]",
            ]
            for pod, p in rows
        ],
        right=(1, 2, 5, 6, 7, 8),
    )
    ok = sum(1 for a in answers if a.ok)
    sys.stdout.write(f"top {len(rows)} by {sort} across {ok} of {len(answers)} pods\n")
    return report(answers)


# -- events -------------------------------------------------------------------------


def fleet_events(args: argparse.Namespace, fleet: Fleet) -> int:
    """Every pod's recorded events, merged by time."""
    from tui.cli.logs import event_line, parse_since

    req = events_pb2.FollowEventsRequest(follow=False, limit=args.tail)
    if args.since:
        req.since.seconds = int(parse_since(args.since))
        req.limit = 0

    def question(client: Client, timeout: float) -> list[events_pb2.Event]:
        out: list[events_pb2.Event] = []
        for b in client.events.FollowEvents(req, timeout=timeout, metadata=client.metadata):
            out.extend(b.events)
        return out

    answers = ask(fleet, question, timeout=args.timeout, concurrency=concurrency(args))
    rows = merge.merge_events(answers)
    width = max((len(a.member) for a in answers), default=0)
    for pod, e in rows:
        if args.output == "json":
            sys.stdout.write(_json_line({"pod": pod, **to_dict(e)}))
        else:
            sys.stdout.write(f"{sanitize(pod):<{width}}  {event_line(e)}\n")
    return report(answers)


def _json_line(obj: dict[str, Any]) -> str:
    import json

    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")) + "\n"


# -- net ----------------------------------------------------------------------------


def fleet_summary(args: argparse.Namespace, fleet: Fleet) -> int:
    """Connections by remote endpoint, summed across pods."""
    from tui.widgets import net_format as fmt

    # Each pod reports its own top remotes; ask for more than shown so a remote
    # that is small in every pod but large in sum still makes the merged top.
    per_pod = max(args.top * 5, 100)

    def question(client: Client, timeout: float) -> network_pb2.SocketSummary:
        s: network_pb2.SocketSummary = client.network.SummarizeSockets(
            network_pb2.SummarizeSocketsRequest(top=per_pod),
            timeout=timeout,
            metadata=client.metadata,
        )
        del s.listeners[:]  # not shown; keep the client's memory to what is merged
        return s

    answers = ask(fleet, question, timeout=args.timeout, concurrency=concurrency(args))
    totals = merge.merge_socket_summaries(answers, args.top)
    if args.output == "json":
        print_json(
            {
                "pods": pods_json(answers),
                "total": totals.total,
                "by_state": totals.by_state,
                "by_remote": [
                    {
                        "remote_address": r.address,
                        "remote_port": r.port,
                        "count": r.count,
                        "pods": sorted(r.pods),
                        "states": r.states,
                    }
                    for r in totals.remotes
                ],
            }
        )
        return report(answers)
    ok = sum(1 for a in answers if a.ok)
    states = ", ".join(f"{k} {v}" for k, v in sorted(totals.by_state.items()))
    print(f"{totals.total} TCP/UDP sockets in {ok} of {len(answers)} pods: {states}")
    print()
    print_table(
        ("REMOTE", "CONNS", "PODS", "STATES"),
        (
            [
                fmt.endpoint(r.address, r.port) if r.port else f"{r.address} (inbound)",
                r.count,
                len(r.pods),
                " ".join(f"{k} {v}" for k, v in sorted(r.states.items())),
            ]
            for r in totals.remotes
        ),
        right=(1, 2),
    )
    return report(answers)


def fleet_sockets(args: argparse.Namespace, fleet: Fleet) -> int:
    """Every pod's sockets in one table with a POD column."""
    from tui.cli.net import _all_sockets
    from tui.widgets import net_format as fmt

    def question(client: Client, timeout: float) -> list[network_pb2.Socket]:
        return _all_sockets(args, client)

    answers = ask(fleet, question, timeout=args.timeout, concurrency=concurrency(args))
    rows = merge.merge_sockets(answers)
    if args.output == "json":
        print_json(
            {"pods": pods_json(answers), "sockets": [{"pod": p, **to_dict(s)} for p, s in rows]}
        )
    elif rows:
        print_table(
            ("POD", *fmt.SOCKET_HEADERS), ([p, *fmt.socket_row(s)] for p, s in rows), right=(3, 4)
        )
    else:
        print("no sockets match")
    return report(answers)
