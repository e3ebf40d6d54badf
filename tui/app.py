"""The borescope Textual app: a shell of screens over one sidecar connection.

Screens live in ``tui/screens/`` (one per file) and are modes of this app;
they reach the sidecar through ``self.app.client`` and never block the event
loop (gRPC runs in workers). The app owns the connection watcher
(``tui.connection``), the header state, the help overlay, the command
palette, target switching and the last line of error handling: an exception
that escapes a worker or a handler becomes a notification, never a traceback.
"""

from __future__ import annotations

import importlib
import time
import traceback
import weakref
from collections.abc import Callable
from typing import Any, ClassVar

import grpc
from textual.app import App
from textual.binding import Binding, BindingType
from textual.reactive import reactive
from textual.screen import Screen
from textual.worker import Worker, WorkerFailed, WorkerState
from textual.worker_manager import WorkerManager

from protos import info_pb2
from tui import heap, recent
from tui.client import CONNECT_TIMEOUT_S, Client, ConnectError, Target, describe_rpc_error
from tui.commands import BorescopeCommands
from tui.connection import (
    CHANNEL_OPTIONS,
    Connection,
    IncompatibleSidecar,
    Status,
    first_contact,
)
from tui.messages import CONNECTED, INCOMPATIBLE, RECONNECTING, ConnectionChanged
from tui.sanitize import sanitize_markup
from tui.screens.target_picker import KubeChoice
from tui.widgets.header import HeaderState, subtitle

#: mode name -> (module under tui.screens, class name, key, title)
SCREENS: dict[str, tuple[str, str, str, str]] = {
    "logs": ("logs", "LogsScreen", "1", "Logs"),
    "processes": ("processes", "ProcessesScreen", "2", "Procs"),
    "files": ("files", "FilesScreen", "3", "Files"),
    "network": ("network", "NetworkScreen", "4", "Net"),
    "events": ("events", "EventsScreen", "5", "Events"),
    "overview": ("overview", "OverviewScreen", "6", "Overview"),
}
HOME = "logs"
SCREEN_KEYS = Binding.Group("Screens", compact=True)
DARK_THEME = "textual-dark"
LIGHT_THEME = "textual-light"
#: More unexpected errors than this within ERROR_WINDOW_S means the app is
#: looping on a bug: leave with one line instead of flooding notifications.
MAX_ERRORS = 30
ERROR_WINDOW_S = 10.0
#: After start-up (and a target switch), the long-lived heap is frozen (``tui.heap``).
SETTLE_AFTER_S = 1.0


class _ReportingWorkerManager(WorkerManager):
    """Reports workers that died with an exception (``exit_on_error=False`` included).

    Textual keeps such an error on the worker and says nothing; on an on-call
    tool a silent failure reads as "no data", so the app shows it instead.
    """

    def _remove_worker(self, worker: Worker[Any]) -> None:
        super()._remove_worker(worker)
        if worker.state is WorkerState.ERROR and not worker.exit_on_error:
            app = self._app
            if isinstance(app, BorescopeApp):
                app.report_worker_error(worker)


class BorescopeApp(App[int]):
    """borescope: look inside a shell-less container."""

    TITLE = "borescope"
    CSS_PATH = "app.tcss"
    COMMANDS = App.COMMANDS | {BorescopeCommands}
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit", "Quit", tooltip="Leave borescope."),
        Binding("ctrl+c", "quit", "Quit", show=False, priority=True, tooltip="Leave borescope."),
        Binding("question_mark", "help", "Help", key_display="?", tooltip="Every key here."),
        *(
            Binding(
                key,
                f"switch_mode('{mode}')",
                title,
                tooltip=f"Show the {title} screen.",
                # One compact "123456 Screens" item: the footer keeps room at 80 columns.
                group=SCREEN_KEYS,
            )
            for mode, (_m, _c, key, title) in SCREENS.items()
        ),
        Binding(
            "ctrl+t", "pick_target", "Target", show=False, tooltip="Connect to another sidecar."
        ),
        Binding(
            "ctrl+r", "reconnect", "Retry now", show=False, tooltip="Ping or reconnect at once."
        ),
        Binding("f2", "toggle_theme", "Theme", show=False, tooltip="Switch dark / light theme."),
        Binding(
            "S",
            "shell",
            "Shell",
            show=False,
            tooltip="A shell in the sidecar container (through Kubernetes); exit to come back.",
        ),
    ]

    header_state: reactive[HeaderState] = reactive(HeaderState, always_update=True)
    """Pod, container, connection state and latency, as the header shows them."""

    def __init__(
        self,
        client: Client,
        *,
        info: info_pb2.GetInfoResponse | None = None,
        ping_interval: float = 2.0,
        watch_connection: bool = True,
        kube_pod: tuple[Any, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.client = client
        self._kube_pod = kube_pod
        self.info = info
        self.ping_interval = ping_interval
        self.watch_connection = watch_connection
        self.connection: Connection | None = None
        self._workers = _ReportingWorkerManager(self)
        self._built: weakref.WeakSet[Screen[Any]] = weakref.WeakSet()
        self._errors: list[float] = []
        self._last_state = ""
        self.theme = DARK_THEME
        for mode, (module, cls, _key, title) in SCREENS.items():
            self.add_mode(mode, self._screen_factory(module, cls, title))

    # -- screens ---------------------------------------------------------------

    def _screen_factory(self, module: str, cls: str, title: str) -> Callable[[], Screen[Any]]:
        def make() -> Screen[Any]:
            screen: Screen[Any] = getattr(importlib.import_module(f"tui.screens.{module}"), cls)()
            if screen.title is None:
                screen.title = title
            self._built.add(screen)
            return screen

        return make

    def action_shell(self) -> None:
        """Suspend the TUI for a shell in the sidecar container (``borescope shell``)."""
        from tui.shell import open_shell

        open_shell(self, self.kube_pod())

    def kube_pod(self) -> tuple[Any, Any] | None:
        """(cluster, pod) when the sidecar was reached through Kubernetes, else None.

        Given by the CLI (``borescope tui pod/NAME``, ``attach``), or the client's
        own when it is a port-forward (``tui.kube.connect.KubeClient``: the picker).
        The home screen then also reads the app's stdout through the API.
        """
        if self._kube_pod is not None:
            return self._kube_pod
        cluster, pod = getattr(self.client, "cluster", None), getattr(self.client, "pod", None)
        return (cluster, pod) if cluster is not None and pod is not None else None

    def built_screens(self) -> list[Screen[Any]]:
        """Every mode screen built so far (they get connection changes)."""
        return list(self._built)

    def on_mount(self) -> None:
        self.show_status(Status("connecting", info=self.info))
        if self.watch_connection:
            self._start_connection(self.info)
        self.switch_mode(getattr(self, "home_mode", HOME))  # fleet mode opens on "fleet"
        self.set_timer(SETTLE_AFTER_S, heap.settle)

    def on_unmount(self) -> None:
        heap.release()
        if self.connection is not None:
            self.connection.on_change = lambda _s: None
            self.connection.stop(timeout=0.5)

    # -- connection ------------------------------------------------------------

    def _start_connection(self, info: info_pb2.GetInfoResponse | None) -> None:
        conn = Connection(self.client, self._status_from_thread, ping_interval=self.ping_interval)
        self.connection = conn
        conn.start(info)

    def _status_from_thread(self, status: Status) -> None:
        # post_message is thread-safe; the watcher must never block on the UI.
        self.post_message(
            ConnectionChanged(
                status.state,
                status.detail,
                status.latency_ms,
                info=status.info,
                address=self.client.target.address,
                reconnected=status.reconnected,
                attempt=status.attempt,
                retry_in_s=status.retry_in_s,
            )
        )

    def on_connection_changed(self, msg: ConnectionChanged) -> None:
        if msg.address and msg.address != self.client.target.address:
            return  # a late report from the watcher of a previous target
        if msg.info is not None:
            self.info = msg.info
        self.show_status(
            Status(
                msg.state,
                msg.detail,
                msg.latency_ms,
                info=msg.info,
                attempt=msg.attempt,
                retry_in_s=msg.retry_in_s,
            )
        )
        if msg.state != self._last_state:
            self._announce(msg)
            self._last_state = msg.state
            for screen in self.built_screens():
                screen.post_message(msg.copy())

    def _announce(self, msg: ConnectionChanged) -> None:
        if msg.state == RECONNECTING:
            self.notify(
                sanitize_markup(f"Connection lost: {msg.detail}. Reconnecting…"),
                severity="warning",
                timeout=6,
            )
        elif msg.state == CONNECTED and msg.reconnected:
            self.notify("Reconnected to the sidecar.", timeout=4)
        elif msg.state == INCOMPATIBLE:
            self.notify(sanitize_markup(msg.detail), severity="error", timeout=30)

    def show_status(self, status: Status) -> None:
        info = status.info or self.info
        old = self.header_state
        apps = [c for c in info.containers if c.kind == info_pb2.CONTAINER_KIND_APP] if info else []
        state = HeaderState(
            address=self.client.target.address,
            pod=info.pod_name if info else "",
            namespace=info.namespace if info else "",
            container=apps[0].name if apps else "",
            containers=len(apps),
            state=status.state,
            detail=status.detail,
            latency_ms=status.latency_ms if status.latency_ms is not None else old.latency_ms,
            attempt=status.attempt,
            retry_in_s=status.retry_in_s,
        )
        if state.state != CONNECTED:
            state = HeaderState(**{**state.__dict__, "latency_ms": None})
        self.header_state = state
        self.sub_title = subtitle(state)

    def action_reconnect(self) -> None:
        """Ping or reconnect now instead of waiting for the next try."""
        if self.connection is not None:
            self.connection.retry_now()

    # -- targets ---------------------------------------------------------------

    def action_pick_target(self) -> None:
        """Open the target picker (recent targets, pods with the sidecar)."""
        from tui.screens.target_picker import TargetPicker

        def chosen(choice: Target | KubeChoice | None) -> None:
            if choice is not None:
                self.switch_target(choice)

        self.push_screen(TargetPicker(current=self.client.target.address), chosen)

    def switch_target(self, choice: Target | KubeChoice) -> None:
        """Connect to ``choice`` in a worker; on success, rebuild the screens on it.

        Args:
            choice: a direct address, or a pod/deployment reached by port-forward.
        """
        what = choice.address if isinstance(choice, Target) else choice.label
        self.notify(sanitize_markup(f"Connecting to {what}…"), timeout=3)
        self.run_worker(
            lambda: self._connect_target(choice, what),
            thread=True,
            exclusive=True,
            group="switch-target",
            exit_on_error=False,
        )

    def _connect_target(self, choice: Target | KubeChoice, what: str) -> None:
        try:
            client = self._open(choice)
        except ConnectError as e:
            self.call_from_thread(self.report_error, f"Cannot switch to {what}: {e}")
            return
        try:
            info = first_contact(client, CONNECT_TIMEOUT_S)
        except (ConnectError, IncompatibleSidecar) as e:
            client.close()
            self.call_from_thread(self.report_error, f"Cannot switch to {what}: {e}")
            return
        key = choice.address if isinstance(choice, Target) else choice.to_recent()
        self.call_from_thread(self._adopt, client, info, key, what)  # type: ignore[arg-type]

    @staticmethod
    def _open(choice: Target | KubeChoice) -> Client:
        """A client for ``choice`` (a port-forward for pods); ConnectError says why not."""
        if isinstance(choice, Target):
            return Client(choice, options=CHANNEL_OPTIONS)
        try:
            from tui.kube.connect import KubeOptions, open_client
            from tui.kube.errors import KubeError
        except ImportError as e:
            raise ConnectError(f"the Kubernetes layer is not available ({e.name})") from None
        try:
            return open_client(choice.spec, KubeOptions(choice.context, choice.namespace))
        except KubeError as e:
            raise ConnectError(str(e)) from None

    async def _adopt(
        self, client: Client, info: info_pb2.GetInfoResponse, key: str, what: str
    ) -> None:
        old_client, old_conn = self.client, self.connection
        if old_conn is not None:
            old_conn.on_change = lambda _s: None
            old_conn.stop(timeout=0)
        current = self.current_mode if self.current_mode in SCREENS else HOME
        # Screens hold streams and state of the old target: build them afresh.
        # The active mode cannot be removed, so park on a blank one meanwhile.
        if "_switching" not in self._modes:
            self.add_mode("_switching", Screen)
        await self.switch_mode("_switching")
        heap.release()  # the old screens must be collectable
        for mode, (module, cls, _key, title) in SCREENS.items():
            await self.remove_mode(mode)
            self.add_mode(mode, self._screen_factory(module, cls, title))
        self.client, self.info, self._last_state = client, info, ""
        self._kube_pod = None  # the new client says whether it goes through Kubernetes
        recent.remember(key)
        self.show_status(Status(CONNECTED, info=info))
        if self.watch_connection:
            self._start_connection(info)
        await self.switch_mode(current)
        self.set_timer(SETTLE_AFTER_S, lambda: heap.settle(full=True))  # the old screens: gone
        old_client.close()
        self.notify(sanitize_markup(f"Now looking at {what}."), timeout=4)

    # -- help, theme, hooks ----------------------------------------------------

    def action_help(self) -> None:
        """Show every key of the app and of the active screen."""
        from tui.screens.help import HelpScreen

        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(self.screen))

    def action_toggle_theme(self) -> None:
        """Switch between the dark and the light theme."""
        self.theme = LIGHT_THEME if self.theme == DARK_THEME else DARK_THEME

    async def call_hook(self, mode: str, hook: str, *args: Any) -> bool:
        """Switch to ``mode`` and call its screen's public hook, if it has one.

        Returns:
            True when the hook exists and was called.
        """
        await self.switch_mode(mode)
        method = getattr(self.screen, hook, None)
        if not callable(method):
            title = SCREENS[mode][3]
            self.notify(f"The {title} screen cannot do {hook}() yet.", severity="warning")
            return False
        result = method(*args)
        if hasattr(result, "__await__"):
            await result
        return True

    # -- errors ----------------------------------------------------------------

    def report_error(self, text: str, title: str = "") -> None:
        """Show an error as a notification (sanitised: it may quote the target)."""
        self.notify(sanitize_markup(text), title=sanitize_markup(title), severity="error")

    def report_worker_error(self, worker: Worker[Any]) -> None:
        """A worker died with an exception: say so, unless it no longer matters."""
        error = worker.error
        node = worker.node
        if isinstance(error, grpc.RpcError) and error.code() == grpc.StatusCode.CANCELLED:
            return  # its screen or the old target's channel went away
        if isinstance(node, Screen) and not node.is_attached:
            return
        if isinstance(error, grpc.RpcError):
            self.report_error(describe_rpc_error(error))
        elif error is not None:
            self._unexpected(error)

    def _unexpected(self, error: BaseException) -> None:
        path = write_crash(error)
        now = self._clock()
        self._errors = [t for t in self._errors if now - t < ERROR_WINDOW_S] + [now]
        if len(self._errors) > MAX_ERRORS:
            self.exit(1, message=f"borescope: stopped after repeated internal errors (see {path})")
            return
        self.report_error(
            f"{type(error).__name__}: {error} (details in {path})", title="Internal error"
        )

    def _clock(self) -> float:
        return time.monotonic()

    def _handle_exception(self, error: Exception) -> None:
        # Textual's default prints a traceback and exits. An on-call engineer
        # needs the app to keep running: report it and carry on.
        if not self.is_running or not self._screen_stacks:
            super()._handle_exception(error)
            return
        inner = error.error if isinstance(error, WorkerFailed) else error
        if isinstance(inner, grpc.RpcError):
            self.report_error(describe_rpc_error(inner))
        else:
            self._unexpected(inner)


def make_app(client: Client, **kwargs: Any) -> BorescopeApp:
    """Build the app (tests use this factory)."""
    return BorescopeApp(client, **kwargs)


CRASH_LOG_MAX_BYTES = 1 << 20


def write_crash(error: BaseException) -> str:
    """Append the traceback to $XDG_STATE_HOME/borescope/tui-errors.log; returns its path.

    The file is started afresh when it passes ``CRASH_LOG_MAX_BYTES`` so it
    never grows without bound.
    """
    path = recent.state_dir() / "tui-errors.log"
    text = "".join(traceback.format_exception(error))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        mode = "w" if path.exists() and path.stat().st_size > CRASH_LOG_MAX_BYTES else "a"
        with path.open(mode, encoding="utf-8") as f:
            f.write(f"--- {time.strftime('%Y-%m-%dT%H:%M:%S%z')}\n{text}\n")
    except OSError as e:
        return f"(not written: {e.strerror})"
    return str(path)
