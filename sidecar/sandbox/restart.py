"""Restart policy "Always" for the sandbox's app, with the kubelet's backoff.

When the app's main process exits (crash, OOM kill, a signal from the TUI)
the container is torn down and started again after 1 s, 2 s, 4 s ... up to
30 s; the delay falls back to 1 s once the app has run for a minute.
"""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from collections.abc import Callable

BACKOFF_START_S = 1.0
BACKOFF_MAX_S = 30.0
BACKOFF_RESET_S = 60.0
POLL_S = 0.2


def describe(status: int | None) -> str:
    """An exit status for a person: "exit code 3", "killed by SIGKILL"."""
    if status is None:
        return "still running"
    if status < 0:
        try:
            return f"killed by {signal.Signals(-status).name}"
        except ValueError:
            return f"killed by signal {-status}"
    return f"exit code {status}"


class RestartPolicy:
    """Watch the app from a thread; restart it when it exits.

    Args:
        current: the app's process now (None before the first start).
        restart: start a new app (called with ``lock`` held); raises to report.
        on_exit: told the exit status as soon as the app is seen gone (lock held).
        say: one line for a person.
        lock: the lock every app (re)start holds, shared with manual restarts.
        closing: set when the sandbox closes; the watch ends.
    """

    def __init__(
        self,
        *,
        current: Callable[[], subprocess.Popen[bytes] | None],
        restart: Callable[[], None],
        on_exit: Callable[[int], None],
        say: Callable[[str], None],
        lock: threading.RLock,
        closing: threading.Event,
    ) -> None:
        self.current = current
        self.restart = restart
        self.on_exit = on_exit
        self.say = say
        self.lock = lock
        self.closing = closing
        self.thread = threading.Thread(target=self._run, name="restart-policy", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def join(self, timeout: float) -> None:
        if self.thread.is_alive():
            self.thread.join(timeout)

    def _run(self) -> None:
        backoff = BACKOFF_START_S
        since = time.monotonic()
        while not self.closing.wait(POLL_S):
            with self.lock:
                p = self.current()
                if p is None or p.poll() is None or self.closing.is_set():
                    continue
                self.on_exit(p.returncode)
            if time.monotonic() - since > BACKOFF_RESET_S:
                backoff = BACKOFF_START_S
            self.say(f"the app exited ({describe(p.returncode)}); restarting in {backoff:g}s")
            if self.closing.wait(backoff):
                return
            with self.lock:
                if self.closing.is_set():
                    return
                if self.current() is not p:
                    continue  # a manual restart got there first
                try:
                    self.restart()
                except RuntimeError as e:  # SandboxError: said, and tried again later
                    self.say(f"the app did not restart: {e}")
            since = time.monotonic()
            backoff = min(backoff * 2, BACKOFF_MAX_S)
