"""``borescope shell``: an interactive shell in the sidecar container (the exec API).

The websocket (``v5.channel.k8s.io``/``v4.channel.k8s.io``: 0 stdin,
1 stdout, 2 stderr, 3 the final Status, 4 terminal size) is opened on a
fresh ApiClient with ``capture_all=False``: the client's ``stream()`` helper
would otherwise keep a copy of everything the shell prints for as long as
the session lasts. On a terminal, stdin is put in raw mode (restored on
every exit path) and window-size changes are sent on the resize channel.
The TUI can call ``run_shell`` inside ``App.suspend()``.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import sys
import termios
import tty
from collections.abc import Iterator, Sequence
from types import FrameType
from typing import Any

from kubernetes.stream import ws_client as _ws_client
from websocket import WebSocketException

from tui.kube.config import Cluster
from tui.kube.errors import KubeError, explain
from tui.kube.targets import PodTarget

# kubernetes.stream carries no type hints; typed here as Any on purpose.
ws_client: Any = _ws_client
WSClient = Any

DEFAULT_COMMAND = ("/bin/sh",)
READ_CHUNK = 32 * 1024


def open_exec(
    cluster: Cluster, target: PodTarget, command: Sequence[str], tty_mode: bool
) -> WSClient:
    """Open the exec websocket to the sidecar container.

    Raises:
        KubeError: forbidden (names pods/exec), no such pod/container, unreachable.
    """
    if not target.sidecar:
        raise KubeError(f"pod {target.pod} has no borescope sidecar to open a shell in")
    api = cluster.stream_core().api_client
    query: list[tuple[str, Any]] = [("command", c) for c in command]
    query += [
        ("container", target.sidecar),
        ("stdin", True),
        ("stdout", True),
        ("stderr", not tty_mode),
        ("tty", tty_mode),
    ]
    _method, url, headers, _body, _post = api.param_serialize(
        method="GET",
        resource_path="/api/v1/namespaces/{namespace}/pods/{name}/exec",
        path_params={"namespace": target.namespace, "name": target.pod},
        query_params=query,
        header_params={},
        auth_settings=["BearerToken"],
    )
    try:
        ws = ws_client.WSClient(
            api.configuration,
            ws_client.get_websocket_url(url),
            {k.lower(): v for k, v in headers.items()},
            capture_all=False,
            binary=True,
        )
    except (WebSocketException, OSError) as e:
        raise explain(e, "create", "pods/exec", target.namespace, target.pod) from None
    finally:
        api.close()
    return ws


@contextlib.contextmanager
def _raw(fd: int, enabled: bool) -> Iterator[None]:
    """Raw mode on ``fd`` while inside; always restored."""
    if not enabled:
        yield
        return
    saved = termios.tcgetattr(fd)
    try:
        tty.setraw(fd)
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def _send_size(ws: WSClient, fd: int) -> None:
    size = os.get_terminal_size(fd)
    payload = json.dumps({"Width": size.columns, "Height": size.lines}).encode()
    ws.write_channel(ws_client.RESIZE_CHANNEL, payload)


def _drain(ws: WSClient, fout: int, ferr: int) -> None:
    """Write what arrived on stdout/stderr (bounded by what one update() read)."""
    for channel, fd in ((ws_client.STDOUT_CHANNEL, fout), (ws_client.STDERR_CHANNEL, ferr)):
        if ws.peek_channel(channel):
            os.write(fd, ws.read_channel(channel))


def _forward_stdin(ws: WSClient, fin: int) -> bool:
    """Send what stdin has; False once stdin is done (EOF, or the remote went away)."""
    data = os.read(fin, READ_CHUNK)
    try:
        if data:
            ws.write_stdin(data)
            return True
        # EOF: tell the remote (v5 only; on v4 it never learns).
        ws.close_channel(ws_client.STDIN_CHANNEL)
    except (OSError, WebSocketException):
        pass  # the process ended and the server closed first: its output is drained below
    return False


def run_shell(
    cluster: Cluster,
    target: PodTarget,
    command: Sequence[str] = DEFAULT_COMMAND,
    *,
    stdin_fd: int | None = None,
    stdout_fd: int | None = None,
    stderr_fd: int | None = None,
    tty_mode: bool | None = None,
) -> int:
    """Run ``command`` in the sidecar, wired to this terminal; return its exit code.

    Args:
        cluster, target: where (the target's sidecar container).
        command: argv in the container.
        stdin_fd, stdout_fd, stderr_fd: default this process's.
        tty_mode: allocate a terminal (default: when stdin is one).

    Raises:
        KubeError: the exec could not be opened.
    """
    fin = sys.stdin.fileno() if stdin_fd is None else stdin_fd
    fout = sys.stdout.fileno() if stdout_fd is None else stdout_fd
    ferr = sys.stderr.fileno() if stderr_fd is None else stderr_fd
    is_tty = os.isatty(fin) if tty_mode is None else tty_mode
    ws = open_exec(cluster, target, command, is_tty)
    old_winch: Any = None
    if is_tty and os.isatty(fin):
        _send_size(ws, fin)

        def on_winch(_signum: int, _frame: FrameType | None) -> None:
            with contextlib.suppress(OSError, WebSocketException):
                _send_size(ws, fin)

        old_winch = signal.signal(signal.SIGWINCH, on_winch)
    stdin_open = True
    try:
        with _raw(fin, is_tty and os.isatty(fin)):
            while ws.is_open():
                try:
                    ws.update(timeout=0.05)
                except (OSError, WebSocketException):
                    break  # closed under us (websocket-client answers the close frame)
                for channel, fd in (
                    (ws_client.STDOUT_CHANNEL, fout),
                    (ws_client.STDERR_CHANNEL, ferr),
                ):
                    if ws.peek_channel(channel):
                        os.write(fd, ws.read_channel(channel))
                if not stdin_open:
                    continue
                readable, _, _ = select.select([fin], [], [], 0)
                if readable:
                    stdin_open = _forward_stdin(ws, fin)
    finally:
        if old_winch is not None:
            signal.signal(signal.SIGWINCH, old_winch)
    _drain(ws, fout, ferr)
    code = exit_code(ws.read_channel(ws_client.ERROR_CHANNEL))
    ws.close()
    return 1 if code is None else code


def exit_code(status: bytes | str) -> int | None:
    """The exit code in the exec's final metav1.Status (None: none was sent)."""
    try:
        doc = json.loads(status or b"null")
    except ValueError:
        return None
    if not isinstance(doc, dict):
        return None
    if doc.get("status") == "Success":
        return 0
    for cause in (doc.get("details") or {}).get("causes") or []:
        if cause.get("reason") == "ExitCode" and str(cause.get("message", "")).isdigit():
            return int(cause["message"])
    return None
