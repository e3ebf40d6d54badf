"""Pure formatting for the Processes screen and ``borescope ps`` (no widgets, no I/O).

Every string that comes from the target goes through ``sanitize`` here, so the
callers can put the results on screen as-is.
"""

from __future__ import annotations

from collections.abc import Sequence

from protos import processes_pb2
from tui.sanitize import sanitize
from tui.units import human_bytes

#: column key -> header, in table order.
COLUMNS: tuple[tuple[str, str], ...] = (
    ("pid", "PID"),
    ("container", "CONTAINER"),
    ("user", "USER"),
    ("state", "S"),
    ("cpu", "CPU%"),
    ("rss", "MEM"),
    ("threads", "THR"),
    ("fds", "FDS"),
    ("command", "COMMAND"),
)
#: Narrow columns keep COMMAND on screen; the detail pane shows the full values.
CONTAINER_WIDTH = 12
USER_WIDTH = 10
#: Sort keys the screen cycles through (the issue's cpu, mem, fds, threads; then pid).
SORTS = ("cpu", "rss", "fds", "threads", "pid")
SORT_LABELS = {"cpu": "cpu", "rss": "mem", "fds": "fds", "threads": "threads", "pid": "pid"}


def clip(text: str, width: int) -> str:
    """``text`` cut to ``width`` cells, with an ellipsis when cut."""
    return text if len(text) <= width else text[: width - 1] + "…"


def row_key(p: processes_pb2.Process) -> str:
    """A table row key: pid and start time (a reused pid is a new row)."""
    return f"{p.ref.pid}:{p.ref.start_ticks}"


def command(p: processes_pb2.Process) -> str:
    """The command line, or ``[comm]`` when it is empty (zombies, kernel-ish tasks)."""
    return sanitize(" ".join(p.cmdline) if p.cmdline else f"[{p.name}]")


def cells(
    p: processes_pb2.Process, container_names: dict[str, str], depth: int = 0
) -> dict[str, str]:
    """The displayed cell of every column for one process."""
    indent = ("  " * depth + "└─ ") if depth else ""
    return {
        "pid": str(p.ref.pid),
        "user": clip(sanitize(p.user), USER_WIDTH),
        "state": p.state[:1],
        "cpu": f"{p.cpu_percent:5.1f}" if p.HasField("cpu_percent") else "    ?",
        "rss": human_bytes(p.rss_bytes) if p.HasField("rss_bytes") else "?",
        "threads": str(p.threads),
        "fds": str(p.fds) if p.HasField("fds") else "?",
        "container": clip(
            sanitize(container_names.get(p.container_id, p.container_id)), CONTAINER_WIDTH
        ),
        "command": indent + command(p),
    }


def sort_value(p: processes_pb2.Process, sort: str) -> float:
    """Numeric sort value; unknown values sort as -1 (last when descending)."""
    if sort == "cpu":
        return p.cpu_percent if p.HasField("cpu_percent") else -1.0
    if sort == "rss":
        return float(p.rss_bytes) if p.HasField("rss_bytes") else -1.0
    if sort == "fds":
        return float(p.fds) if p.HasField("fds") else -1.0
    if sort == "threads":
        return float(p.threads)
    return float(-p.ref.pid)  # pid ascending under a descending sort


def tree_order(procs: Sequence[processes_pb2.Process]) -> list[tuple[int, processes_pb2.Process]]:
    """(depth, process) in depth-first order; roots are processes whose parent is not listed."""
    by_pid = {p.ref.pid: p for p in procs}
    children: dict[int, list[processes_pb2.Process]] = {}
    for p in procs:
        children.setdefault(p.ppid if p.ppid in by_pid else 0, []).append(p)
    out: list[tuple[int, processes_pb2.Process]] = []
    stack = [(0, p) for p in sorted(children.get(0, []), key=lambda p: -p.ref.pid)]
    seen: set[int] = set()
    while stack:
        depth, p = stack.pop()
        if p.ref.pid in seen:
            continue  # a pid cycle cannot happen in /proc, but never loop on bad input
        seen.add(p.ref.pid)
        out.append((depth, p))
        kids = sorted(children.get(p.ref.pid, []), key=lambda c: -c.ref.pid)
        stack.extend((depth + 1, c) for c in kids)
    return out


def summary(p: processes_pb2.Process) -> str:
    """A few lines describing one process (for the detail pane)."""
    rss = human_bytes(p.rss_bytes) if p.HasField("rss_bytes") else "?"
    pss = human_bytes(p.pss_bytes) if p.HasField("pss_bytes") else "?"
    cpu = f"{p.cpu_percent:.1f}%" if p.HasField("cpu_percent") else "?"
    lines = [
        f"pid {p.ref.pid}  ppid {p.ppid}  {sanitize(p.name)}  {p.state}  user {sanitize(p.user)}",
        f"container {sanitize(p.container_id)}",
        f"cpu {cpu}  rss {rss}  pss {pss}  threads {p.threads}  "
        f"fds {p.fds if p.HasField('fds') else '?'}  nice {p.nice}",
        f"exe {sanitize(p.exe) if p.HasField('exe') else '?'}",
        f"cwd {sanitize(p.cwd) if p.HasField('cwd') else '?'}",
        f"cmd {command(p)}",
    ]
    if p.HasField("io"):
        lines.append(
            f"io read {human_bytes(p.io.read_bytes)}  write {human_bytes(p.io.write_bytes)}"
        )
    lines += [f"unavailable {sanitize(u.field)}: {sanitize(u.reason)}" for u in p.unavailable]
    return "\n".join(lines)


def cgroup_lines(c: processes_pb2.CgroupStats) -> list[tuple[str, str]]:
    """(figure, value) pairs for the cgroup tab; unset figures say '-'."""

    def val(field: str, size: bool = False) -> str:
        if not c.HasField(field):  # type: ignore[arg-type]
            return "-"
        v = getattr(c, field)
        return human_bytes(v) if size else str(v)

    quota = "none" if c.HasField("cpu_quota_us") and c.cpu_quota_us < 0 else val("cpu_quota_us")
    limit = val("memory_limit_bytes", True) if c.HasField("memory_limit_bytes") else "none"
    rows = [
        ("version / path", f"v{c.version}  {sanitize(c.path)}"),
        ("memory limit", limit),
        ("memory usage", val("memory_usage_bytes", True)),
        ("memory peak", val("memory_peak_bytes", True)),
        ("OOM kills", val("oom_kills")),
        ("OOM events", val("oom_events")),
        ("cpu quota / period (us)", f"{quota} / {val('cpu_period_us')}"),
        ("throttled periods", f"{val('nr_throttled')} of {val('nr_periods')}"),
        ("throttled time (us)", val("throttled_usec")),
        ("pids", f"{val('pids_current')} of {val('pids_max')}"),
    ]
    rows += [(f"unavailable: {sanitize(u.field)}", sanitize(u.reason)) for u in c.unavailable]
    return rows
