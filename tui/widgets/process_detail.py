"""The detail pane of the Processes screen: summary, sparklines, and section tabs."""

from __future__ import annotations

from collections import deque

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import DataTable, Sparkline, Static, TabbedContent, TabPane

from protos import processes_pb2
from tui.sanitize import sanitize
from tui.widgets import process_format as fmt

SPARK_POINTS = 60
PROTOCOLS = {1: "tcp", 2: "udp", 3: "unix", 4: "unix-dgram", 5: "unix-seq"}

#: tab id -> (title, columns)
TABS: dict[str, tuple[str, tuple[str, ...]]] = {
    "ps-env": ("Env", ("NAME", "VALUE")),
    "ps-limits": ("Limits", ("LIMIT", "SOFT", "HARD", "UNITS")),
    "ps-cgroup": ("Cgroup", ("FIGURE", "VALUE")),
    "ps-files": ("Files", ("FD", "TYPE", "POS", "FLAGS", "PATH")),
    "ps-threads": ("Threads", ("TID", "CPU%", "STATE", "NAME")),
    "ps-sockets": ("Sockets", ("PROTO", "STATE", "LOCAL", "REMOTE")),
}


class ProcessDetail(Vertical):
    """Everything about the selected process; filled by ``show`` and ``add_sample``."""

    DEFAULT_CSS = """
    ProcessDetail { width: 2fr; border-left: solid $primary-darken-2; padding: 0 1; }
    ProcessDetail #ps-summary { height: auto; max-height: 9; }
    ProcessDetail #ps-sparks { height: 4; }
    ProcessDetail #ps-sparks Vertical { width: 1fr; padding-right: 1; }
    ProcessDetail .ps-spark-label { height: 1; }
    ProcessDetail Sparkline { height: 2; }
    ProcessDetail DataTable { height: 1fr; }
    """

    def __init__(self) -> None:
        super().__init__(id="ps-detail")
        self.cpu: deque[float] = deque(maxlen=SPARK_POINTS)
        self.rss: deque[float] = deque(maxlen=SPARK_POINTS)
        self.detail: processes_pb2.ProcessDetail | None = None

    def compose(self) -> ComposeResult:
        yield Static("select a process (enter)", id="ps-summary", markup=False)
        with Horizontal(id="ps-sparks"):
            with Vertical():
                yield Static("cpu %", id="ps-spark-cpu-label", classes="ps-spark-label")
                yield Sparkline([], id="ps-spark-cpu")
            with Vertical():
                yield Static("rss", id="ps-spark-rss-label", classes="ps-spark-label")
                yield Sparkline([], id="ps-spark-rss")
        with TabbedContent(initial="ps-env", id="ps-tabs"):
            for tab_id, (title, _cols) in TABS.items():
                with TabPane(title, id=tab_id), VerticalScroll():
                    table: DataTable[str] = DataTable(
                        id=f"{tab_id}-table", zebra_stripes=True, cursor_type="row"
                    )
                    yield table

    def on_mount(self) -> None:
        for tab_id, (_title, cols) in TABS.items():
            self.query_one(f"#{tab_id}-table", DataTable).add_columns(*cols)

    def clear_samples(self) -> None:
        """Forget the sparkline history (another process was selected)."""
        self.cpu.clear()
        self.rss.clear()
        self.query_one("#ps-spark-cpu", Sparkline).data = []
        self.query_one("#ps-spark-rss", Sparkline).data = []
        self.query_one("#ps-spark-cpu-label", Static).update("cpu %")
        self.query_one("#ps-spark-rss-label", Static).update("rss")

    def add_sample(self, s: processes_pb2.ProcessSample) -> None:
        """Append one watch sample to the sparklines."""
        if s.HasField("cpu_percent"):
            self.cpu.append(s.cpu_percent)
            self.query_one("#ps-spark-cpu", Sparkline).data = list(self.cpu)
            self.query_one("#ps-spark-cpu-label", Static).update(f"cpu % now {s.cpu_percent:.1f}")
        if s.HasField("rss_bytes"):
            self.rss.append(float(s.rss_bytes))
            self.query_one("#ps-spark-rss", Sparkline).data = list(self.rss)
            self.query_one("#ps-spark-rss-label", Static).update(
                f"rss now {fmt.human_bytes(s.rss_bytes)}"
            )

    def mark_exited(self) -> None:
        """Say the shown process is gone (the details are its last known state)."""
        summary = self.query_one("#ps-summary", Static)
        summary.update(f"EXITED (last known state below)\n{summary.content}")

    def show(self, d: processes_pb2.ProcessDetail) -> None:
        """Fill the summary and every section tab from one GetProcess answer."""
        self.detail = d
        text = fmt.summary(d.process)
        if d.children:
            text += f"\nchildren {' '.join(map(str, d.children))}"
        for u in d.unavailable:
            text += f"\nunavailable {sanitize(u.field)}: {sanitize(u.reason)}"
        self.query_one("#ps-summary", Static).update(text)
        s = sanitize
        self._fill(
            "ps-env", [[s(e.name), "<redacted>" if e.redacted else s(e.value)] for e in d.env]
        )
        self._fill("ps-limits", [[s(x.name), x.soft, x.hard, x.units] for x in d.limits])
        self._fill(
            "ps-cgroup",
            [list(r) for r in fmt.cgroup_lines(d.cgroup)] if d.HasField("cgroup") else [],
        )
        self._fill(
            "ps-files",
            [[str(f.fd), f.type, str(f.position), f.flags, s(f.path)] for f in d.open_files],
        )
        self._fill(
            "ps-threads",
            [
                [
                    str(t.tid),
                    f"{t.cpu_percent:.1f}" if t.HasField("cpu_percent") else "?",
                    t.state,
                    s(t.name),
                ]
                for t in d.threads
            ],
        )
        self._fill(
            "ps-sockets",
            [
                [
                    PROTOCOLS.get(x.protocol, str(x.protocol)),
                    x.state,
                    f"{s(x.local_address)}:{x.local_port}",
                    f"{s(x.remote_address)}:{x.remote_port}",
                ]
                for x in d.sockets
            ],
        )

    def _fill(self, tab_id: str, rows: list[list[str]]) -> None:
        # Detail tables are rebuilt per selection (tens of rows), not refreshed in place.
        table = self.query_one(f"#{tab_id}-table", DataTable)
        table.clear()
        table.add_rows(rows)

    def rows(self, tab_id: str) -> list[list[str]]:
        """The rows a section tab shows (for tests and copy)."""
        table = self.query_one(f"#{tab_id}-table", DataTable)
        return [[str(c) for c in table.get_row(k)] for k in table.rows]
