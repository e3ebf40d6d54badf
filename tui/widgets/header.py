"""The one-line header: app, screen, pod, container, connection state, latency.

The state lives on the app (``BorescopeApp.header_state``); this widget only
watches and draws it, so every screen that yields one shows the same thing.
Screens that keep Textual's stock ``Header`` still see the same facts: the
app mirrors them into ``App.sub_title`` (see :func:`subtitle`).
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual.app import RenderResult
from textual.widget import Widget

from tui.messages import CLOSED, CONNECTED, CONNECTING, INCOMPATIBLE, RECONNECTING
from tui.sanitize import sanitize


@dataclass(frozen=True)
class HeaderState:
    """What the header shows. Every string from the sidecar is sanitised on display."""

    address: str = ""
    pod: str = ""
    namespace: str = ""
    container: str = ""
    containers: int = 0
    state: str = CONNECTING
    detail: str = ""
    latency_ms: float | None = None
    attempt: int = 0
    retry_in_s: float | None = None


def state_label(s: HeaderState) -> str:
    """The connection part, in words a person reads at a glance."""
    if s.state == CONNECTED:
        return "● connected" + (f" {s.latency_ms:.0f} ms" if s.latency_ms is not None else "")
    if s.state == RECONNECTING:
        more = f" (attempt {s.attempt})" if s.attempt else ""
        return f"⟳ Reconnecting…{more}"
    if s.state == CONNECTING:
        return "… connecting"
    if s.state == INCOMPATIBLE:
        return "✖ incompatible sidecar"
    if s.state == CLOSED:
        return "○ closed"
    return sanitize(s.state)


def where(s: HeaderState) -> str:
    """pod (namespace) and container, sanitised."""
    pod = sanitize(s.pod) or sanitize(s.address) or "?"
    if s.namespace:
        pod = f"{sanitize(s.namespace)}/{pod}"
    ctr = sanitize(s.container)
    if ctr and s.containers > 1:
        ctr += f" +{s.containers - 1}"
    return f"{pod} · {ctr}" if ctr else pod


def subtitle(s: HeaderState) -> str:
    """The same facts as one plain line, for screens using Textual's stock Header."""
    return f"{where(s)} · {state_label(s)}"


_STATE_STYLE = {
    CONNECTED: "bold green",
    RECONNECTING: "bold black on yellow",
    CONNECTING: "bold yellow",
    INCOMPATIBLE: "bold white on red",
    CLOSED: "dim",
}


class BorescopeHeader(Widget):
    """Docked one-line header. Reads ``app.header_state`` and the active mode's title."""

    DEFAULT_CSS = """
    BorescopeHeader {
        dock: top;
        height: 1;
        width: 1fr;
        background: $panel;
        color: $foreground;
    }
    """

    def on_mount(self) -> None:
        # Not every app has header_state (widget tests); draw a default then.
        if hasattr(self.app, "header_state"):
            self.watch(self.app, "header_state", self._changed, init=False)

    def _changed(self, _state: HeaderState) -> None:
        self.refresh()

    def render(self) -> RenderResult:
        s: HeaderState = getattr(self.app, "header_state", HeaderState())
        title = sanitize(self.screen.title or "")
        state = state_label(s)
        text = Text(no_wrap=True, overflow="ellipsis", end="")
        text.append(" borescope", style="bold")
        if title:
            text.append(f" · {title}", style="bold")
        text.append("  ")
        # Leave room for the state so it is never the part cut off.
        room = max(8, self.size.width - len(text.plain) - len(state) - 3)
        place = where(s)
        if len(place) > room:
            place = place[: max(1, room - 1)] + "…"
        text.append(place)
        pad = max(1, self.size.width - len(text.plain) - len(state) - 1)
        text.append(" " * pad)
        text.append(state, style=_STATE_STYLE.get(s.state, ""))
        text.append(" ")
        return text
