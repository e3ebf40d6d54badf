"""A filterable table of sockets (ss-like), for the Network screen's Sockets tab.

The rows shown are capped (``MAX_ROWS``): a refill of a few thousand rows
is the most a refresh should cost. The filter matches every word against
the row's text ("CLOSE_WAIT :5432" keeps close-wait sockets on port 5432);
a word may name its column ("remote:10.0.0.9:5432", "state:listen").
"""

from __future__ import annotations

from collections.abc import Sequence

from textual import on
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import DataTable, Input, Static

from protos import network_pb2
from tui.widgets import net_format as fmt

MAX_ROWS = 2000


#: Filter words may name a column: "remote:10.0.0.9:5432", "state:time_wait".
COLUMNS = {"proto": 0, "state": 1, "local": 4, "remote": 5, "proc": 6, "process": 6}


def matches(row: Sequence[str], words: Sequence[str]) -> bool:
    """Every word occurs in the row, or in its column when qualified (case-insensitive)."""
    text = " ".join(row).lower()
    for word in words:
        column, sep, value = word.partition(":")
        if sep and column in COLUMNS:
            if value not in row[COLUMNS[column]].lower():
                return False
        elif word not in text:
            return False
    return True


class SocketTable(Vertical):
    """Filter input, a count line and the socket rows."""

    DEFAULT_CSS = """
    SocketTable { height: 1fr; }
    SocketTable Input { margin: 0 0 0 0; }
    SocketTable #sock-count { height: 1; padding: 0 1; color: $text-muted; }
    SocketTable DataTable { height: 1fr; }
    """

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.rows: list[list[str]] = []
        self.truncated = False

    def compose(self) -> ComposeResult:
        yield Input(
            placeholder="filter: words that must all appear, e.g. CLOSE_WAIT remote::5432 proc:java",
            id="sock-filter",
        )
        yield Static("", id="sock-count", markup=False)
        table: DataTable[str] = DataTable(id="sock-table", zebra_stripes=True, cursor_type="row")
        yield table

    def on_mount(self) -> None:
        self.query_one(DataTable).add_columns(*fmt.SOCKET_HEADERS)

    @property
    def filter_text(self) -> str:
        return self.query_one("#sock-filter", Input).value

    def set_filter(self, text: str) -> None:
        """Show only rows matching ``text``."""
        self.query_one("#sock-filter", Input).value = text
        self._draw()

    def load(self, sockets: Sequence[network_pb2.Socket], truncated: bool) -> None:
        """Replace the rows with ``sockets`` (strings already sanitised by net_format)."""
        self.rows = [fmt.socket_row(s) for s in sockets]
        self.truncated = truncated
        self._draw()

    @on(Input.Changed, "#sock-filter")
    def _changed(self) -> None:
        self._draw()

    def shown(self) -> list[list[str]]:
        """The rows the filter keeps, capped at MAX_ROWS."""
        words = self.filter_text.lower().split()
        kept = [r for r in self.rows if matches(r, words)] if words else self.rows
        return kept[:MAX_ROWS]

    def _draw(self) -> None:
        rows = self.shown()
        table = self.query_one(DataTable)
        table.clear()
        table.add_rows(rows)
        words = self.filter_text.split()
        total = len(self.rows)
        kept = (
            sum(1 for r in self.rows if matches(r, [w.lower() for w in words])) if words else total
        )
        note = f"{kept} of {total} sockets"
        if kept > len(rows):
            note += f" (first {len(rows)} shown: narrow the filter)"
        if self.truncated:
            note += "; the sidecar's listing bound cut the list"
        self.query_one("#sock-count", Static).update(note)
