"""The confirmation dialog in front of sending a signal."""

from __future__ import annotations

from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

from tui.sanitize import sanitize

SIGNALS: tuple[tuple[str, str], ...] = (
    ("SIGTERM", "ask it to stop"),
    ("SIGQUIT", "thread dump (JVM, Go) or quit"),
    ("SIGHUP", "reload config"),
    ("SIGUSR1", "app-defined"),
    ("SIGUSR2", "app-defined"),
    ("SIGKILL", "kill at once; no cleanup"),
)


class SignalDialog(ModalScreen[str | None]):
    """Pick a signal for one process; Enter sends it, Escape cancels. Dismisses with the name."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel", tooltip="Close without sending anything."),
    ]
    DEFAULT_CSS = """
    SignalDialog { align: center middle; }
    SignalDialog > Vertical {
        width: 64; height: auto; border: thick $error; background: $surface; padding: 1 2;
    }
    SignalDialog OptionList { height: auto; max-height: 8; }
    """

    def __init__(
        self, pid: int, start_ticks: int, name: str, allowed: tuple[str, ...] = ()
    ) -> None:
        super().__init__()
        self.pid = pid
        self.start_ticks = start_ticks
        self.proc_name = name
        # The sidecar's config may say "TERM" or "sigterm"; compare canonical names.
        self.allowed = {
            a.upper() if a.upper().startswith("SIG") else f"SIG{a.upper()}" for a in allowed
        }

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(
                f"Send a signal to pid {self.pid} ({sanitize(self.proc_name)}), "
                f"start {self.start_ticks}?\nIt goes to this very process or nowhere. "
                "Enter sends, Escape cancels.",
                id="signal-question",
                markup=False,
            )
            options = [
                Option(f"{name:<8} {why}", id=name)
                for name, why in SIGNALS
                if not self.allowed or name in self.allowed
            ]
            yield OptionList(*options, id="signal-choices")

    def on_mount(self) -> None:
        self.query_one(OptionList).focus()

    @on(OptionList.OptionSelected)
    def _chosen(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)

    def action_cancel(self) -> None:
        """Close without sending anything."""
        self.dismiss(None)
