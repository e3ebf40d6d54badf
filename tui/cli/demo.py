"""``borescope demo``: start the sandbox pod and open the TUI on it.

The sandbox runs as a child process (``python -m sidecar.sandbox --headless``),
so this module never imports the sidecar or the agent. The child gets its own
session (a Ctrl-C in the terminal reaches only us, and we stop it in order)
and a parent-death signal (if we are killed outright it still cleans up).
``--headless`` passes the sandbox's ``token``/``listening on`` lines through and
runs until SIGINT/SIGTERM.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import ctypes
import ctypes.util
import queue
import signal
import subprocess
import sys
import threading
import time
from types import FrameType
from typing import IO

from tui.cli.common import EXIT_INTERRUPTED, EXIT_RPC, CliError
from tui.client import Target

START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0
PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM it when we die, so the sandbox cleans up."""
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


class SandboxProcess:
    """The ``python -m sidecar.sandbox --headless`` child and its two lines."""

    def __init__(
        self,
        mode: str,
        port: int,
        echo: bool,
        settings: list[str] | None = None,
        least_privilege: bool = False,
    ) -> None:
        argv = [sys.executable, "-m", "sidecar.sandbox", "--headless", "--mode", mode]
        if least_privilege:
            argv.append("--sidecar-as-app-user")
        if port:
            argv += ["--port", str(port)]
        for kv in settings or []:
            argv += ["--set", kv]
        try:
            self.proc = subprocess.Popen(
                argv,
                # The running interpreter itself, whatever the path's permissions:
                # a non-root user may run a venv whose base lies under /root yet be
                # refused a fresh exec by path. argv[0] keeps the venv.
                executable="/proc/self/exe",
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
                preexec_fn=_die_with_parent,  # noqa: PLW1509 - we are single-threaded here
            )
        except OSError as e:
            raise CliError(f"cannot start the sandbox: {e}", EXIT_RPC) from None
        self.echo = echo
        self.notes: collections.deque[str] = collections.deque(maxlen=50)
        self.quiet = threading.Event()  # set while the TUI owns the terminal
        assert self.proc.stderr is not None
        threading.Thread(target=self._drain, args=(self.proc.stderr,), daemon=True).start()

    def _drain(self, stream: IO[bytes]) -> None:
        with stream:
            for raw in stream:
                line = raw.decode("utf-8", "replace").rstrip("\n")
                self.notes.append(line)
                if not self.quiet.is_set():
                    # One write per line: print() writes the newline apart, and a
                    # stdout line could land between them when both go to one file.
                    sys.stderr.write(line + "\n")
                    sys.stderr.flush()

    def wait_ready(
        self, timeout: float = START_TIMEOUT_S, cancel: threading.Event | None = None
    ) -> Target | None:
        """Read ``token``/``listening on``; None if ``cancel`` was set first.

        Raises:
            CliError: the sandbox exited or stayed silent past ``timeout``.
        """
        assert self.proc.stdout is not None
        lines: queue.Queue[bytes] = queue.Queue()
        out = self.proc.stdout

        def read() -> None:
            # The rest of stdout is drained too, so the child never blocks on a full pipe.
            for raw in out:
                lines.put(raw)
            lines.put(b"")

        threading.Thread(target=read, name="sandbox-stdout", daemon=True).start()
        token, address = "", ""
        deadline = time.monotonic() + timeout
        while not address:
            if cancel is not None and cancel.is_set():
                return None
            try:
                raw = lines.get(timeout=0.2)
            except queue.Empty:
                if time.monotonic() < deadline:
                    continue
                raw = b""
            if not raw:
                self.stop()
                last = self.notes[-1] if self.notes else "no output"
                raise CliError(f"the sandbox did not start: {last}", EXIT_RPC)
            line = raw.decode("utf-8", "replace").strip()
            if self.echo:
                sys.stdout.write(line + "\n")
                sys.stdout.flush()
            if line.startswith("token "):
                token = line.split(" ", 1)[1]
            elif line.startswith("listening on "):
                address = line.rsplit(" ", 1)[1]
        return Target(address, token)

    def stop(self) -> int:
        """SIGTERM the sandbox and wait for it to remove everything."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return self.proc.returncode


def _headless(sb: SandboxProcess, stop: threading.Event) -> int:
    if sb.wait_ready(cancel=stop) is None:
        return 0 if sb.stop() == 0 else EXIT_RPC
    while not stop.wait(0.5):
        if sb.proc.poll() is not None:
            return EXIT_RPC  # the sandbox died on its own; its stderr said why
    return 0 if sb.stop() == 0 else EXIT_RPC


def _interactive(sb: SandboxProcess) -> int:
    from tui.cli.tui_cmd import launch

    target = sb.wait_ready()
    assert target is not None  # no cancel event: a Ctrl-C raises KeyboardInterrupt instead
    sb.quiet.set()
    try:
        return launch(target)
    finally:
        sb.quiet.clear()


def run(args: argparse.Namespace) -> int:
    stop = threading.Event()
    if args.headless:
        # Installed before the child starts: a signal at any moment tears it down.
        def on_signal(_signum: int, _frame: FrameType | None) -> None:
            stop.set()

        signal.signal(signal.SIGINT, on_signal)
        signal.signal(signal.SIGTERM, on_signal)
    sb = SandboxProcess(
        args.mode,
        args.port,
        echo=args.headless,
        settings=args.set,
        least_privilege=args.sidecar_as_app_user,
    )
    try:
        if args.headless:
            return _headless(sb, stop)
        return _interactive(sb)
    except KeyboardInterrupt:
        print("borescope demo: interrupted; stopping the sandbox", file=sys.stderr)
        sb.stop()
        return EXIT_INTERRUPTED
    finally:
        if sb.proc.poll() is None:
            print("borescope demo: stopping the sandbox", file=sys.stderr, flush=True)
            sb.stop()


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Adds ``borescope demo``."""
    p = sub.add_parser(
        "demo",
        help="start a sandbox pod with a shell-less app and open the TUI on it",
        description=(
            "Start a sandbox pod (a shell-less demo app plus the sidecar; needs root, "
            "else local mode) and open the TUI. Quitting removes everything it made."
        ),
    )
    p.add_argument(
        "--headless",
        action="store_true",
        help="no TUI: print 'listening on HOST:PORT' and run until SIGINT/SIGTERM",
    )
    p.add_argument(
        "--mode",
        choices=("auto", "pod", "local"),
        default="auto",
        help="pod needs root; auto falls back to local mode without it",
    )
    p.add_argument("--port", type=int, default=0, help="host port for the sidecar (0 = any)")
    p.add_argument(
        "--sidecar-as-app-user",
        action="store_true",
        help="run the sidecar as the app's uid with no capabilities (pod mode)",
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="sidecar config (repeatable), e.g. --set allow_signals=true --set allow_probes=true",
    )
    p.set_defaults(func=run)
