"""The Fleet screen: one row per pod, Enter looks inside that pod.

Shown first when ``borescope tui`` names several sidecars (several
``--addr``, ``deploy/NAME``, ``-l``). Every ``REFRESH_S`` one worker asks
all pods (``tui.fleet.overview.gather``: bounded concurrency, per-pod
timeout); a pod that fails keeps its row with the reason, so a dead replica
is visible rather than missing. Enter switches the app's target to the
selected pod (the other screens then show that pod; ``0`` comes back here).
"""

from __future__ import annotations

from typing import ClassVar

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import DataTable, Footer, Static

from tui.client import Client
from tui.fleet.fanout import Answer
from tui.fleet.members import Fleet, Member
from tui.fleet.overview import ERROR_WINDOW_S, PodHealth, gather
from tui.sanitize import sanitize, sanitize_markup
from tui.widgets.header import BorescopeHeader

REFRESH_S = 5.0
CALL_TIMEOUT_S = 4.0
#: STATE last: an error message there does not push the numbers off screen.
COLUMNS = ("POD", "CPU%", "RSS", "RESTARTS", "ERR/MIN", "CONNS", "STATE")


def _bytes(n: int | None) -> str:
    if n is None:
        return "?"
    for unit in ("B", "K", "M", "G"):
        if n < 1024:
            return f"{n:.0f}{unit}" if unit == "B" else f"{n:.1f}{unit}"
        n = int(n / 1024)
    return f"{n:.1f}T"


def row_cells(a: Answer[PodHealth]) -> tuple[str, ...]:
    """The cells of one pod's row (everything sanitised: pod names come from the target)."""
    name = sanitize(a.member)
    h = a.value
    if h is None:
        return (name, "", "", "", "", "", sanitize(a.error)[:100])
    errors = f"≥{h.errors_per_min}" if h.errors_capped else str(h.errors_per_min)
    return (
        name,
        "?" if h.cpu_percent is None else f"{h.cpu_percent:.1f}",
        _bytes(h.rss_bytes),
        str(h.restarts),
        errors,
        str(h.connections),
        "ok",
    )


class FleetScreen(Screen[None]):
    """Every pod of the fleet at a glance."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "drill", "Inspect pod", tooltip="Look inside the selected pod."),
        Binding("r", "refresh", "Refresh", tooltip="Ask every pod again now."),
    ]

    def __init__(self, fleet: Fleet) -> None:
        super().__init__()
        self.fleet = fleet
        self.title = "Fleet"
        self._clients: dict[str, Client] = {}
        self._timer: Timer | None = None

    def compose(self) -> ComposeResult:
        yield BorescopeHeader()
        yield Static(id="fleet-status")
        table: DataTable[str] = DataTable(id="fleet-table", cursor_type="row", zebra_stripes=True)
        yield table
        yield Footer()

    def on_mount(self) -> None:
        table: DataTable[str] = self.query_one(DataTable)
        for col in COLUMNS:
            table.add_column(col, key=col)
        for m in self.fleet.members:
            table.add_row(sanitize(m.name), "", "", "", "", "", "…", key=m.name)
        self._status(f"asking {len(self.fleet.members)} pods…")
        self.action_refresh()
        self._timer = self.set_interval(REFRESH_S, self.action_refresh)

    def on_unmount(self) -> None:
        for c in self._clients.values():
            c.close()
        self._clients.clear()

    def _status(self, text: str) -> None:
        self.query_one("#fleet-status", Static).update(sanitize_markup(text))

    def action_refresh(self) -> None:
        """Ask every pod for its row now."""
        self._gather()

    @work(thread=True, exclusive=True, exit_on_error=False, group="fleet")
    def _gather(self) -> None:
        answers = gather(self.fleet, CALL_TIMEOUT_S, self._clients)
        self.app.call_from_thread(self._show, answers)

    def _show(self, answers: list[Answer[PodHealth]]) -> None:
        table: DataTable[str] = self.query_one(DataTable)
        for a in answers:
            for col, cell in zip(COLUMNS, row_cells(a), strict=True):
                table.update_cell(a.member, col, cell, update_width=True)
        ok = sum(1 for a in answers if a.ok)
        self._status(
            f"{ok} of {len(answers)} pods answered · errors per minute over the last "
            f"{ERROR_WINDOW_S} s · Enter: look inside a pod · 0: back here"
        )

    def selected(self) -> Member | None:
        """The member under the cursor."""
        table: DataTable[str] = self.query_one(DataTable)
        if table.row_count == 0:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        return next((m for m in self.fleet.members if m.name == key), None)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self.action_drill()

    def action_drill(self) -> None:
        """Switch the app's target to the selected pod."""
        member = self.selected()
        if member is None:
            return
        if member.error:
            self.notify(sanitize_markup(f"{member.name}: {member.error}"), severity="error")
            return
        choice = drill_choice(self.fleet, member)
        switch = getattr(self.app, "switch_target", None)
        if choice is None or switch is None:
            self.notify("This pod cannot be opened from here.", severity="error")
            return
        switch(choice)


def drill_choice(fleet: Fleet, member: Member) -> object | None:
    """What ``BorescopeApp.switch_target`` needs for ``member``: a Target or a KubeChoice."""
    if member.target is not None:
        return member.target
    if member.pod is not None:
        from tui.screens.target_picker import KubeChoice

        ctx = fleet.context
        return KubeChoice(f"pod/{member.pod.pod}", ctx, member.pod.namespace)
    return None
