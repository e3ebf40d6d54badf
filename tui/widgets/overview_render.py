"""Pure drawing for the Overview screen: protobuf in, Rich renderables out.

Kept apart from the screen so it is unit-tested without a terminal, and so
the snapshot tests can feed fixed data. Every string from the target goes
through ``sanitize`` and into ``rich.text.Text`` (never markup).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from google.protobuf.timestamp_pb2 import Timestamp
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from protos import events_pb2, info_pb2, network_pb2, processes_pb2
from tui.sanitize import sanitize
from tui.units import human_bytes

KIND = {
    info_pb2.CONTAINER_KIND_APP: "app",
    info_pb2.CONTAINER_KIND_SIDECAR: "sidecar",
    info_pb2.CONTAINER_KIND_INFRA: "infra",
}
SEVERITY = {
    events_pb2.SEVERITY_INFO: ("info", ""),
    events_pb2.SEVERITY_WARNING: ("warn", "yellow"),
    events_pb2.SEVERITY_CRITICAL: ("CRIT", "bold red"),
}
PROTO = {
    network_pb2.SOCKET_PROTOCOL_TCP: "tcp",
    network_pb2.SOCKET_PROTOCOL_UDP: "udp",
    network_pb2.SOCKET_PROTOCOL_UNIX_STREAM: "unix",
    network_pb2.SOCKET_PROTOCOL_UNIX_DGRAM: "unix/dg",
    network_pb2.SOCKET_PROTOCOL_UNIX_SEQPACKET: "unix/sp",
}


@dataclass
class OverviewData:
    """One refresh worth of Overview data; a section that failed is in ``errors``."""

    now: datetime
    info: info_pb2.GetInfoResponse | None = None
    cgroup: processes_pb2.CgroupStats | None = None
    processes: list[processes_pb2.Process] = field(default_factory=list)
    listeners: list[network_pb2.Socket] = field(default_factory=list)
    events: list[events_pb2.Event] = field(default_factory=list)
    samples: list[events_pb2.ContainerSample] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)


def primary_container(info: info_pb2.GetInfoResponse | None) -> info_pb2.Container | None:
    """The first app container (what "the target" means when none is chosen)."""
    if info is None:
        return None
    return next((c for c in info.containers if c.kind == info_pb2.CONTAINER_KIND_APP), None)


def duration(seconds: float) -> str:
    """A short age: '45s', '12m03s', '2h05m', '3d04h'."""
    s = max(0, int(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


def _dt(ts: Timestamp) -> datetime | None:
    if ts.seconds == 0 and ts.nanos == 0:
        return None
    return ts.ToDatetime(tzinfo=UTC)


def _age(ts: Timestamp, now: datetime) -> str:
    when = _dt(ts)
    return duration((now - when).total_seconds()) if when else "?"


def bar(used: float, limit: float, width: int) -> Text:
    """A usage bar: '██████░░░░ 61%', coloured by how close it is to the limit."""
    frac = 0.0 if limit <= 0 else max(0.0, min(1.0, used / limit))
    cells = max(4, width)
    full = round(frac * cells)
    style = "red" if frac >= 0.9 else "yellow" if frac >= 0.7 else "green"
    t = Text()
    t.append("█" * full, style=style)
    t.append("░" * (cells - full), style="dim")
    t.append(f" {frac * 100:3.0f}%")
    return t


def _error(data: OverviewData, section: str) -> Text | None:
    msg = data.errors.get(section)
    return Text(sanitize(msg), style="italic dim") if msg else None


def _table(*columns: str) -> Table:
    """A borderless table; "NAME:8>" means min width 8, right-aligned; "NAME*" grows.

    Fixed columns keep their width at 80 columns, so only the growing (text)
    column is cut with an ellipsis, never a pid or a number.
    """
    t = Table(box=None, expand=True, padding=(0, 1), show_edge=False, header_style="bold")
    for spec in columns:
        grow = spec.endswith("*")
        name, _, rest = spec.rstrip("*").partition(":")
        right = rest.endswith(">")
        width = int(rest.rstrip(">")) if rest.rstrip(">") else None
        t.add_column(
            name,
            no_wrap=True,
            overflow="ellipsis",
            justify="right" if right else "left",
            min_width=width,
            ratio=1 if grow else None,
        )
    return t


def render_pod(data: OverviewData) -> RenderableType:
    """Pod name, namespace, node, sidecar version and uptime, and access."""
    info = data.info
    if info is None:
        return _error(data, "pod") or Text("no data yet", style="dim")
    t = Table.grid(padding=(0, 1))
    t.add_column(style="dim", no_wrap=True, min_width=9)
    t.add_column(overflow="ellipsis", no_wrap=True)
    t.add_row("pod", Text(sanitize(info.pod_name) or "?"))
    starts = [d for c in info.containers if (d := _dt(c.started)) is not None]
    if starts:
        restarts = sum(c.restarts for c in info.containers)
        up = Text(f"{duration((data.now - min(starts)).total_seconds())}")
        if restarts:
            up.append(f", {restarts} restart{'s' if restarts > 1 else ''}", "bold red")
        t.add_row("up", up)
    if info.namespace:
        t.add_row("namespace", Text(sanitize(info.namespace)))
    if info.node_name:
        t.add_row("node", Text(sanitize(info.node_name)))
    t.add_row(
        "sidecar",
        Text(
            f"{sanitize(info.sidecar_version)} (API {sanitize(info.api_version)}), "
            f"up {_age(info.sidecar_started, data.now)}"
        ),
    )
    caps = ", ".join(c.removeprefix("CAP_") for c in info.access.capabilities) or "none"
    t.add_row("access", Text(sanitize(f"uid {info.access.uid}, caps: {caps}")))
    lim = list(info.access.limitations)
    if lim:
        more = f" (+{len(lim) - 1} more)" if len(lim) > 1 else ""
        t.add_row("blind", Text(sanitize(lim[0]) + more, style="yellow"))
    return t


MAX_CONTAINER_ROWS = 8


def render_containers(data: OverviewData) -> RenderableType:
    """One row per container (apps first): kind, pids, uptime, restarts, root access.

    At most ``MAX_CONTAINER_ROWS`` rows, then a count of the rest, so a crowded
    pod cannot push the other panels off the screen.
    """
    info = data.info
    if info is None:
        return _error(data, "pod") or Text("no data yet", style="dim")
    t = _table("NAME*", "KIND:7", "PIDS:4>", "UP:6>", "RESTARTS:8>", "ROOT:9")
    order = {info_pb2.CONTAINER_KIND_APP: 0, info_pb2.CONTAINER_KIND_SIDECAR: 1}
    containers = sorted(info.containers, key=lambda c: order.get(c.kind, 2))
    for c in containers[:MAX_CONTAINER_ROWS]:
        restarts = Text(str(c.restarts), style="bold red" if c.restarts else "")
        root = Text(
            "ok" if c.root_accessible else "no access",
            style="" if c.root_accessible else "yellow",
        )
        t.add_row(
            Text(sanitize(c.name) or sanitize(c.id)),
            KIND.get(c.kind, "?"),
            str(len(c.pids)),
            _age(c.started, data.now),
            restarts,
            root,
        )
    hidden = len(containers) - MAX_CONTAINER_ROWS
    if hidden > 0:
        t.add_row(Text(f"… {hidden} more (Processes screen, c to filter)", style="dim"))
    return t


def _memory(cg: processes_pb2.CgroupStats, barw: int) -> Text | None:
    if not cg.HasField("memory_usage_bytes"):
        return None
    used = cg.memory_usage_bytes
    if not cg.HasField("memory_limit_bytes"):
        return Text(f"{human_bytes(used)} (no limit)")
    t = bar(used, cg.memory_limit_bytes, barw)
    t.append(f" {human_bytes(used)}/{human_bytes(cg.memory_limit_bytes)}")
    return t


def _cpu(cg: processes_pb2.CgroupStats) -> Text | None:
    if not cg.HasField("cpu_quota_us"):
        return None
    if cg.cpu_quota_us <= 0 or not cg.HasField("cpu_period_us"):
        return Text("no quota")
    text = f"limit {cg.cpu_quota_us / max(1, cg.cpu_period_us):.2f} cores"
    if cg.HasField("nr_periods") and cg.HasField("nr_throttled") and cg.nr_periods:
        pct = 100.0 * cg.nr_throttled / cg.nr_periods
        style = "bold red" if pct >= 25 else "yellow" if pct > 0 else ""
        return Text(f"{text}, throttled {pct:.0f}% of periods", style=style)
    return Text(text)


def _pids(cg: processes_pb2.CgroupStats, barw: int) -> Text | None:
    if not cg.HasField("pids_current"):
        return None
    if not (cg.HasField("pids_max") and cg.pids_max):
        return Text(f"{cg.pids_current} (no limit)")
    t = bar(cg.pids_current, cg.pids_max, barw)
    t.append(f" {cg.pids_current}/{cg.pids_max}")
    return t


def render_limits(data: OverviewData, width: int = 30) -> RenderableType:
    """Memory, cpu quota and throttling, pids and OOM kills against the cgroup's limits."""
    if (err := _error(data, "limits")) is not None:
        return err
    cg = data.cgroup
    if cg is None:
        return Text("no cgroup data for the target's root process", style="dim")
    barw = max(4, width - 28)
    oom = None
    if cg.HasField("oom_kills"):
        oom = Text(f"{cg.oom_kills} kills", style="bold red" if cg.oom_kills else "")
    rows: list[RenderableType] = []
    for label, value in (
        ("memory", _memory(cg, barw)),
        ("cpu", _cpu(cg)),
        ("pids", _pids(cg, barw)),
        ("oom", oom),
    ):
        if value is not None:
            rows.append(Text(f"{label:<7}", style="dim").append_text(value))
    for u in list(cg.unavailable)[:2]:
        rows.append(Text(sanitize(f"{u.field}: {u.reason}"), style="italic dim"))
    if not rows:
        rows.append(Text("no limits readable", style="dim"))
    return Group(*rows)


def render_processes(data: OverviewData) -> RenderableType:
    """Top processes by cpu: pid, name, cpu, rss."""
    if (err := _error(data, "processes")) is not None:
        return err
    t = _table("PID:7>", "NAME*", "CPU%:5>", "RSS:6>")
    for p in data.processes:
        cpu = f"{p.cpu_percent:.1f}" if p.HasField("cpu_percent") else "-"
        rss = human_bytes(p.rss_bytes) if p.HasField("rss_bytes") else "-"
        t.add_row(str(p.ref.pid), Text(sanitize(p.name)), cpu, rss)
    return t


def render_listeners(data: OverviewData) -> RenderableType:
    """Listening sockets: protocol, address, owner."""
    if (err := _error(data, "listeners")) is not None:
        return err
    t = _table("PROTO:5", "ADDRESS*", "OWNER*")
    for s in data.listeners:
        if s.family == network_pb2.SOCKET_FAMILY_UNIX:
            where = s.unix_path or f"inode {s.inode}"
        elif ":" in s.local_address:
            where = f"[{s.local_address}]:{s.local_port}"
        else:
            where = f"{s.local_address}:{s.local_port}"
        owner = ", ".join(f"{o.process.pid}/{o.name}" for o in s.owners) or "-"
        t.add_row(PROTO.get(s.protocol, "?"), Text(sanitize(where)), Text(sanitize(owner)))
    return t


def render_events(data: OverviewData) -> RenderableType:
    """The last events from the recorder, newest last."""
    if (err := _error(data, "events")) is not None:
        return err
    if not data.events:
        return Text("no events recorded", style="dim")
    t = _table("TIME:8", "SEV:4", "EVENT*")
    for e in data.events:
        when = _dt(e.time)
        sev, style = SEVERITY.get(e.severity, ("?", ""))
        t.add_row(
            when.strftime("%H:%M:%S") if when else "?",
            Text(sev, style=style),
            Text(sanitize(e.message)),
        )
    return t


def sample_series(data: OverviewData) -> tuple[list[float], list[float], Text, Text]:
    """cpu and memory series of the primary container, with their labels."""
    primary = primary_container(data.info)
    samples = [s for s in data.samples if primary is None or s.container_id == primary.id]
    if not samples:
        why = sanitize(data.errors.get("history", "no samples yet"))
        return [], [], Text(f"cpu: {why}", style="dim"), Text(f"memory: {why}", style="dim")
    cpu = [s.cpu_percent for s in samples]
    mem = [
        float(s.memory_cgroup_bytes if s.HasField("memory_cgroup_bytes") else s.rss_bytes)
        for s in samples
    ]
    first, last = _dt(samples[0].time), _dt(samples[-1].time)
    span = duration((last - first).total_seconds()) if first and last else "?"
    cpu_label = Text("cpu ", style="bold")
    cpu_label.append(f"{cpu[-1]:.1f}% now, max {max(cpu):.1f}% over {span}", style="dim")
    mem_label = Text("memory ", style="bold")
    mem_label.append(f"{human_bytes(mem[-1])} now, max {human_bytes(max(mem))}", style="dim")
    return cpu, mem, cpu_label, mem_label
