"""The sandbox's restart policy on real processes: exit seen, backoff kept, manual restarts win."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

from sidecar.sandbox import restart
from sidecar.sandbox.restart import RestartPolicy


def _proc(code: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", code])


def test_describe_names_exit_codes_and_signals() -> None:
    """Statuses read like a person would say them."""
    assert restart.describe(3) == "exit code 3"
    assert restart.describe(-9) == "killed by SIGKILL"
    assert restart.describe(None) == "still running"


def test_an_exited_app_is_restarted_after_the_backoff() -> None:
    """A process exiting with 3 is reported, then replaced after ~1 s (not at once)."""
    lock, closing = threading.RLock(), threading.Event()
    box = {"app": _proc("raise SystemExit(3)")}
    exits: list[int] = []
    said: list[str] = []
    restarted_at: list[float] = []

    def do_restart() -> None:
        restarted_at.append(time.monotonic())
        box["app"] = _proc("import time; time.sleep(30)")

    policy = RestartPolicy(
        current=lambda: box["app"],
        restart=do_restart,
        on_exit=exits.append,
        say=said.append,
        lock=lock,
        closing=closing,
    )
    box["app"].wait()
    gone = time.monotonic()
    policy.start()
    try:
        deadline = time.monotonic() + 10
        while not restarted_at and time.monotonic() < deadline:
            time.sleep(0.05)
        assert exits == [3]
        assert restarted_at and restarted_at[0] - gone >= restart.BACKOFF_START_S * 0.9
        assert any("exit code 3" in s for s in said)
        time.sleep(0.5)
        assert len(restarted_at) == 1, "a running app is left alone"
    finally:
        closing.set()
        policy.join(5)
        box["app"].kill()
        box["app"].wait()
    assert not policy.thread.is_alive(), "closing ends the watch"


def test_closing_during_the_backoff_cancels_the_restart() -> None:
    """A sandbox closing while the app waits for its restart does not start it again."""
    lock, closing = threading.RLock(), threading.Event()
    app = _proc("pass")
    app.wait()
    restarted: list[bool] = []
    policy = RestartPolicy(
        current=lambda: app,
        restart=lambda: restarted.append(True),
        on_exit=lambda _s: None,
        say=lambda _t: None,
        lock=lock,
        closing=closing,
    )
    policy.start()
    time.sleep(0.4)  # seen, now in its backoff
    closing.set()
    policy.join(5)
    assert restarted == [] and not policy.thread.is_alive()
