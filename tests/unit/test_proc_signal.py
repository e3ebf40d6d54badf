"""Signals: config gate, name parsing, pidfd delivery and pid-reuse protection."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest

import agent
from agent.errors import InvalidArgument, NotAllowed, NotFound, ProcessRestarted


def _ref(pid: int) -> agent.ProcessRef:
    with open(f"/proc/{pid}/stat", "rb") as f:
        start = int(f.read().rsplit(b")", 1)[1].split()[19])
    return agent.ProcessRef(pid, start)


@pytest.mark.parametrize(
    ("spec", "want"),
    [
        ("SIGTERM", signal.SIGTERM),
        ("term", signal.SIGTERM),
        ("9", signal.SIGKILL),
        ("usr1", signal.SIGUSR1),
    ],
)
def test_signal_names_parse(spec: str, want: signal.Signals) -> None:
    """Names with or without SIG, any case, and numbers all parse."""
    assert agent.parse_signal(spec) is want


def test_unknown_signal_is_invalid() -> None:
    """A made-up signal is INVALID_ARGUMENT with a hint."""
    with pytest.raises(InvalidArgument, match="SIGTERM"):
        agent.parse_signal("SIGBANANA")


def test_disabled_signals_name_the_switch() -> None:
    """With signals off the refusal names allow_signals; a signal outside the list names allowed_signals."""
    with pytest.raises(NotAllowed, match="allow_signals"):
        agent.check_allowed(signal.SIGTERM, False, ("SIGTERM",))
    with pytest.raises(NotAllowed, match="allowed_signals"):
        agent.check_allowed(signal.SIGKILL, True, ("SIGTERM", "SIGHUP"))
    agent.check_allowed(signal.SIGHUP, True, ("SIGTERM", "HUP"))


def test_signal_is_delivered_through_a_pidfd() -> None:
    """SIGTERM reaches the process named by (pid, start) via pidfd_send_signal."""
    p = subprocess.Popen(["sleep", "300"])
    try:
        result = agent.send_signal(_ref(p.pid), signal.SIGTERM)
        assert result.delivered and result.method == "pidfd_send_signal"
        assert p.wait(timeout=5) == -signal.SIGTERM
    finally:
        p.kill()
        p.wait()


def test_signal_to_a_restarted_pid_is_refused_and_not_sent() -> None:
    """A start time that does not match is ProcessRestarted, and the process lives on."""
    p = subprocess.Popen(["sleep", "300"])
    try:
        ref = _ref(p.pid)
        with pytest.raises(ProcessRestarted, match="no signal was sent"):
            agent.send_signal(agent.ProcessRef(p.pid, ref.start_ticks - 1), signal.SIGKILL)
        time.sleep(0.1)
        assert p.poll() is None
        with pytest.raises(InvalidArgument, match="start_ticks"):
            agent.send_signal(agent.ProcessRef(p.pid, 0), signal.SIGKILL)
    finally:
        p.kill()
        p.wait()
    with pytest.raises(NotFound):
        agent.send_signal(ref, signal.SIGTERM)


def test_sigquit_reaches_a_handler() -> None:
    """A process that handles SIGQUIT (like a JVM thread dump) gets it and keeps running."""
    code = (
        "import signal, sys, time\n"
        "signal.signal(signal.SIGQUIT, lambda *a: print('dump', flush=True))\n"
        "print('ready', flush=True)\n"
        "time.sleep(30)\n"
    )
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout is not None and p.stdout.readline().strip() == "ready"
        agent.send_signal(_ref(p.pid), signal.SIGQUIT)
        assert p.stdout.readline().strip() == "dump"
        assert p.poll() is None
    finally:
        p.kill()
        p.wait()
