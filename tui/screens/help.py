"""The ``?`` overlay: every key of the active screen and of the app.

Generated from the live bindings (``Screen.active_bindings``: the focused
widget, its parents, the screen and the app), so it can never drift from
what the keys really do. Each row shows the key, the binding's description
and its tooltip.
"""

from __future__ import annotations

from typing import Any, ClassVar

from rich.table import Table
from rich.text import Text
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Static


def binding_rows(screen: Screen[Any]) -> list[tuple[str, str, str, str]]:
    """(group, key, description, tooltip) for every active binding of ``screen``.

    Groups: the screen's title (its own and its widgets' keys) first, then
    "Everywhere" for the app's keys. Keys bound to the same action are merged.
    """
    app = screen.app
    rows: dict[tuple[str, str], tuple[str, list[str], str, str]] = {}
    for key, active in screen.active_bindings.items():
        b: Binding = active.binding
        node = active.node
        if isinstance(node, App):
            group = "Everywhere"
        elif isinstance(node, Screen):
            group = screen.title or type(node).__name__
        else:
            group = f"{screen.title or type(screen).__name__} · {type(node).__name__}"
        desc = b.description or b.action.replace("_", " ")
        shown = app.get_key_display(b) if b.key == key else key
        slot = rows.get((group, b.action))
        if slot is None:
            rows[(group, b.action)] = (group, [shown], desc, b.tooltip or active.tooltip)
        elif shown not in slot[1]:
            slot[1].append(shown)
    out = [(g, " ".join(keys), d, t, a) for (g, a), (_g, keys, d, t) in rows.items()]
    title = screen.title or type(screen).__name__
    ours = _own_actions(screen) | _own_actions(app)

    def rank(row: tuple[str, str, str, str, str]) -> tuple[int, int]:
        group = 0 if row[0] == title else 1 if row[0] == "Everywhere" else 2
        # Keys borescope defines come before Textual's generic ones (tab, copy).
        return group, 0 if row[4] in ours else 1

    # sorted() is stable: the definition order is kept inside each rank.
    return [r[:4] for r in sorted(out, key=rank)]


def _own_actions(node: object) -> set[str]:
    """Actions bound in BINDINGS of the node's classes outside Textual itself."""
    actions: set[str] = set()
    for cls in type(node).__mro__:
        if cls.__module__.startswith("textual"):
            continue
        for b in cls.__dict__.get("BINDINGS", []):
            if isinstance(b, Binding):
                actions.add(b.action)
    return actions


class HelpScreen(ModalScreen[None]):
    """Keys of the screen it was opened from, and of the app. Escape or ? closes it."""

    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > VerticalScroll {
        width: 90; max-width: 100%; height: auto; max-height: 100%;
        border: round $accent; background: $panel; padding: 0 1;
    }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,question_mark,q", "close", "Close", tooltip="Back to the screen."),
    ]

    def __init__(self, about: Screen[Any]) -> None:
        super().__init__()
        self.about_title = about.title or type(about).__name__
        self.rows = binding_rows(about)

    def compose(self) -> ComposeResult:
        table = Table(box=None, expand=True, show_header=False, padding=(0, 1))
        table.add_column("key", style="bold", no_wrap=True, max_width=14)
        table.add_column("what", ratio=1)
        table.add_column("more", ratio=2, style="dim")
        group = None
        for g, key, desc, tip in self.rows:
            if g != group:
                table.add_row(Text(g, style="bold underline"), "", "")
                group = g
            # Plain Text: descriptions are ours, but never parse them as markup.
            table.add_row(Text(key), Text(desc), Text(tip))
        with VerticalScroll():
            yield Static(Text(f"Keys: {self.about_title}", style="bold"))
            yield Static(table)
            yield Static(Text("ctrl+p: command palette · escape: close", style="dim"))

    def action_close(self) -> None:
        """Back to the screen."""
        self.dismiss(None)
