"""``borescope ps [--tree] [PID]`` and ``borescope kill PID -s SIGNAL``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable

from protos import common_pb2, info_pb2, processes_pb2
from tui.cli.common import (
    CliError,
    add_connection_args,
    add_output_arg,
    print_json,
    print_table,
    to_dict,
    with_client,
)
from tui.client import Client
from tui.sanitize import sanitize
from tui.units import human_bytes
from tui.widgets.process_format import tree_order

SORTS = {
    "pid": processes_pb2.PROCESS_SORT_PID,
    "cpu": processes_pb2.PROCESS_SORT_CPU,
    "rss": processes_pb2.PROCESS_SORT_RSS,
    "mem": processes_pb2.PROCESS_SORT_RSS,
    "fds": processes_pb2.PROCESS_SORT_FDS,
    "threads": processes_pb2.PROCESS_SORT_THREADS,
}
MAX_PAGES = 100
HEADERS = ["PID", "PPID", "USER", "S", "CPU%", "RSS", "THR", "FDS", "CONTAINER", "COMMAND"]


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("ps", help="list the pod's processes, or show one in detail (ps PID)")
    p.add_argument("pid", nargs="?", type=int, help="show everything about this process")
    p.add_argument("--tree", action="store_true", help="show the process tree (like ps --forest)")
    p.add_argument("-c", "--container", default="", help="only this container (id or name)")
    p.add_argument("--sort", choices=sorted(SORTS), default="pid", help="sort key (default pid)")
    p.add_argument(
        "--section",
        action="append",
        default=[],
        choices=("env", "limits", "cgroup", "files", "threads", "sockets"),
        help="with PID: only these detail sections (repeatable; default all)",
    )
    add_connection_args(p)
    add_output_arg(p)
    p.set_defaults(func=with_client(run_ps))

    k = sub.add_parser("kill", help="send a signal to a process (the sidecar must allow it)")
    k.add_argument("pid", type=int)
    k.add_argument(
        "-s", "--signal", default="SIGTERM", help="signal name or number (default SIGTERM)"
    )
    k.add_argument(
        "--start-ticks",
        type=int,
        default=0,
        help="the process's start time (from ps -o json); default: the process that has PID now",
    )
    k.add_argument("--reason", default="", help="free text for the audit record")
    add_connection_args(k)
    add_output_arg(k)
    k.set_defaults(func=with_client(run_kill))


def _cpu(p: processes_pb2.Process) -> str:
    return f"{p.cpu_percent:.1f}" if p.HasField("cpu_percent") else "?"


def _command(p: processes_pb2.Process) -> str:
    return " ".join(p.cmdline) if p.cmdline else f"[{p.name}]"


def _containers(client: Client, timeout: float) -> dict[str, str]:
    resp = client.info.ListContainers(
        info_pb2.ListContainersRequest(include_sidecar=True, include_infra=True),
        timeout=timeout,
        metadata=client.metadata,
    )
    return {c.id: c.name for c in resp.containers}


def run_ps(args: argparse.Namespace, client: Client) -> int:
    if args.pid is not None:
        return _detail(args, client)
    req = processes_pb2.ListProcessesRequest(
        container=common_pb2.ContainerSelector(id=args.container),
        sort=SORTS[args.sort],
        descending=args.sort != "pid",
    )
    resp = client.processes.ListProcesses(req, timeout=args.timeout, metadata=client.metadata)
    for _ in range(MAX_PAGES):  # a page ends early only at the message size bound
        if not resp.page.next_page_token:
            break
        req.page.page_token = resp.page.next_page_token
        more = client.processes.ListProcesses(req, timeout=args.timeout, metadata=client.metadata)
        resp.processes.extend(more.processes)
        resp.page.CopyFrom(more.page)
    if args.output == "json":
        print_json(to_dict(resp))
        return 0
    names = _containers(client, args.timeout)
    rows: Iterable[tuple[int, processes_pb2.Process]] = (
        tree_order(resp.processes) if args.tree else ((0, p) for p in resp.processes)
    )
    print_table(
        HEADERS,
        [
            [
                p.ref.pid,
                p.ppid,
                p.user,
                p.state[:1],
                _cpu(p),
                human_bytes(p.rss_bytes) if p.HasField("rss_bytes") else "?",
                p.threads,
                p.fds if p.HasField("fds") else "?",
                names.get(p.container_id, p.container_id),
                ("  " * depth + ("└─ " if depth else "")) + _command(p),
            ]
            for depth, p in rows
        ],
        right=(0, 1, 4, 5, 6, 7),
    )
    return 0


def _detail(args: argparse.Namespace, client: Client) -> int:
    req = processes_pb2.GetProcessRequest(
        ref=common_pb2.ProcessRef(pid=args.pid), sections=args.section
    )
    d = client.processes.GetProcess(req, timeout=args.timeout, metadata=client.metadata)
    if args.output == "json":
        print_json(d)
        return 0
    write_detail(d)
    return 0


def _line(text: str) -> None:
    sys.stdout.write(sanitize(text) + "\n")


def write_detail(d: processes_pb2.ProcessDetail) -> None:
    """The detail of one process as readable sections (every target string sanitised)."""
    p = d.process
    _line(f"pid {p.ref.pid} (start {p.ref.start_ticks})  ppid {p.ppid}  {p.name}  {p.state}")
    _line(f"  command   {_command(p)}")
    _line(f"  user      {p.user} ({p.uid})   container {p.container_id}   nice {p.nice}")
    _line(f"  exe       {p.exe if p.HasField('exe') else '?'}")
    _line(f"  cwd       {p.cwd if p.HasField('cwd') else '?'}")
    rss = human_bytes(p.rss_bytes) if p.HasField("rss_bytes") else "?"
    pss = human_bytes(p.pss_bytes) if p.HasField("pss_bytes") else "?"
    _line(
        f"  cpu       {_cpu(p)}%  user {p.cpu_user_seconds:.2f}s  sys {p.cpu_system_seconds:.2f}s"
    )
    _line(f"  memory    rss {rss}  pss {pss}  vms {human_bytes(p.vms_bytes)}")
    _line(f"  threads   {p.threads}   fds {p.fds if p.HasField('fds') else '?'}")
    if p.HasField("io"):
        io = p.io
        _line(f"  io        read {human_bytes(io.read_bytes)}  write {human_bytes(io.write_bytes)}")
    if d.children:
        _line(f"  children  {' '.join(map(str, d.children))}")
    for u in list(p.unavailable) + list(d.unavailable):
        _line(f"  unavailable: {u.field}: {u.reason}")
    if d.env:
        _line("")
        _line("environment")
        for e in d.env:
            _line(f"  {e.name}={'<redacted>' if e.redacted else e.value}")
    if d.limits:
        _line("")
        _line("limits")
        print_table(
            ["  LIMIT", "SOFT", "HARD", "UNITS"],
            [[f"  {x.name}", x.soft, x.hard, x.units] for x in d.limits],
        )
    if d.HasField("cgroup"):
        _cgroup(d.cgroup)
    if d.open_files:
        _line("")
        _line("open files")
        print_table(
            ["  FD", "TYPE", "POS", "FLAGS", "PATH"],
            [[f"  {f.fd}", f.type, f.position, f.flags, f.path] for f in d.open_files],
            right=(0, 2),
        )
    if d.threads:
        _line("")
        _line("threads")
        print_table(
            ["  TID", "CPU%", "STATE", "NAME"],
            [
                [
                    f"  {t.tid}",
                    f"{t.cpu_percent:.1f}" if t.HasField("cpu_percent") else "?",
                    t.state,
                    t.name,
                ]
                for t in d.threads
            ],
            right=(0, 1),
        )
    if d.sockets:
        _line("")
        _line("sockets")
        print_table(
            ["  STATE", "LOCAL", "REMOTE"],
            [
                [
                    f"  {s.state}",
                    f"{s.local_address}:{s.local_port}",
                    f"{s.remote_address}:{s.remote_port}",
                ]
                for s in d.sockets
            ],
        )


def _cgroup(c: processes_pb2.CgroupStats) -> None:
    def val(field: str, fmt: str = "n") -> str:
        if not c.HasField(field):  # type: ignore[arg-type]
            return "-"
        v = getattr(c, field)
        return human_bytes(v) if fmt == "b" else str(v)

    _line("")
    _line(f"cgroup v{c.version}  {c.path}")
    _line(
        f"  memory    limit {val('memory_limit_bytes', 'b') if c.HasField('memory_limit_bytes') else 'none'}"
        f"  usage {val('memory_usage_bytes', 'b')}  peak {val('memory_peak_bytes', 'b')}"
        f"  oom kills {val('oom_kills')}"
    )
    quota = (
        "none" if c.HasField("cpu_quota_us") and c.cpu_quota_us < 0 else f"{val('cpu_quota_us')}us"
    )
    _line(
        f"  cpu       quota {quota} / period {val('cpu_period_us')}us"
        f"  throttled {val('nr_throttled')} of {val('nr_periods')} periods ({val('throttled_usec')}us)"
    )
    _line(f"  pids      {val('pids_current')} of {val('pids_max')}")
    for u in c.unavailable:
        _line(f"  unavailable: {u.field}: {u.reason}")


def run_kill(args: argparse.Namespace, client: Client) -> int:
    start = args.start_ticks
    name = ""
    if not start:
        # Pin the identity now: the signal then goes to this very process or nowhere.
        d = client.processes.GetProcess(
            processes_pb2.GetProcessRequest(
                ref=common_pb2.ProcessRef(pid=args.pid), sections=["limits"]
            ),
            timeout=args.timeout,
            metadata=client.metadata,
        )
        start, name = d.process.ref.start_ticks, d.process.name
    resp = client.processes.SignalProcess(
        processes_pb2.SignalProcessRequest(
            ref=common_pb2.ProcessRef(pid=args.pid, start_ticks=start),
            signal=args.signal,
            reason=args.reason,
        ),
        timeout=args.timeout,
        metadata=client.metadata,
    )
    if args.output == "json":
        print_json(resp)
        return 0
    if not resp.delivered:
        raise CliError(f"signal {args.signal} was not delivered to {args.pid}")
    who = f"{args.pid} ({sanitize(name)})" if name else str(args.pid)
    print(f"sent {args.signal} to {who} via {resp.method}")
    return 0
