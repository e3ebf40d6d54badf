"""Messages shared across screens and widgets."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.message import Message

if TYPE_CHECKING:
    from protos import info_pb2

#: Connection states, in the words the header shows.
CONNECTING = "connecting"
CONNECTED = "connected"
RECONNECTING = "reconnecting"
INCOMPATIBLE = "incompatible"
CLOSED = "closed"


class ConnectionChanged(Message, bubble=False):
    """The connection to the sidecar changed state, or a latency ping came back.

    The app forwards it to every screen it has built, so a screen that
    streams can resume from its cursor when ``state`` becomes "connected"
    again (``reconnected`` is then True). It does not bubble: the app sends
    one copy to each screen, and a screen's copy must not come back to it.

    Attributes:
        state: one of connecting, connected, reconnecting, incompatible, closed.
        detail: why (the last error), for a person.
        latency_ms: last round trip of the health ping, when connected.
        info: the sidecar's GetInfo answer from the last (re)connect.
        address: which sidecar this is about.
        reconnected: True on the first "connected" after a loss.
        attempt: reconnect attempts so far (while not connected).
        retry_in_s: seconds until the next attempt, while waiting.
    """

    def __init__(
        self,
        state: str,
        detail: str = "",
        latency_ms: float | None = None,
        *,
        info: info_pb2.GetInfoResponse | None = None,
        address: str = "",
        reconnected: bool = False,
        attempt: int = 0,
        retry_in_s: float | None = None,
    ) -> None:
        super().__init__()
        self.state = state
        self.detail = detail
        self.latency_ms = latency_ms
        self.info = info
        self.address = address
        self.reconnected = reconnected
        self.attempt = attempt
        self.retry_in_s = retry_in_s

    def copy(self) -> ConnectionChanged:
        """A fresh message with the same facts (a message is posted once)."""
        return ConnectionChanged(
            self.state,
            self.detail,
            self.latency_ms,
            info=self.info,
            address=self.address,
            reconnected=self.reconnected,
            attempt=self.attempt,
            retry_in_s=self.retry_in_s,
        )
