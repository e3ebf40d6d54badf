"""Send a signal to exactly the process the caller meant.

The pid is opened as a pidfd first, then its start time is checked: if it
matches, the pidfd refers to that process for as long as it is open, so a
pid reused between the check and the send cannot receive the signal. Where
the kernel has no pidfd (< 5.3), ``kill`` is used after the same check.
"""

from __future__ import annotations

import errno
import os
import signal
from collections.abc import Collection

from agent._common import PROC, parse_stat, read_bytes
from agent.errors import AccessDenied, InvalidArgument, NotAllowed, NotFound, ProcessRestarted
from agent.results.pod import ProcessRef
from agent.results.proc import SignalResult


def parse_signal(spec: str) -> signal.Signals:
    """``"SIGTERM"``, ``"term"`` or ``"15"`` -> ``signal.SIGTERM``.

    Raises:
        InvalidArgument: not a signal.
    """
    s = spec.strip().upper()
    try:
        if s.isdigit():
            return signal.Signals(int(s))
        return signal.Signals[s if s.startswith("SIG") else f"SIG{s}"]
    except (KeyError, ValueError):
        raise InvalidArgument(
            f"unknown signal {spec!r} (use a name like SIGTERM or a number)"
        ) from None


def check_allowed(sig: signal.Signals, enabled: bool, allowed: Collection[str]) -> None:
    """Refuse unless signals are enabled and ``sig`` is in the allowed list.

    Raises:
        NotAllowed: naming the config switch to change.
    """
    if not enabled:
        raise NotAllowed(
            "sending signals is disabled on this sidecar; enable it with the config switch "
            "allow_signals=true (env BORESCOPE_ALLOW_SIGNALS=1)"
        )
    names = {parse_signal(a).name for a in allowed}
    if sig.name not in names:
        raise NotAllowed(
            f"{sig.name} is not in the sidecar's allowed_signals "
            f"({', '.join(sorted(names)) or 'empty'}); change the config switch allowed_signals"
        )


def _start_ticks(proc: str, pid: int) -> int:
    try:
        return int(parse_stat(read_bytes(f"{proc}/{pid}/stat", 2048))[1][19])
    except (FileNotFoundError, ProcessLookupError):
        raise NotFound(f"no process {pid} (it exited)") from None


def _check(proc: str, ref: ProcessRef) -> None:
    now = _start_ticks(proc, ref.pid)
    if now != ref.start_ticks:
        raise ProcessRestarted(
            f"process restarted: pid {ref.pid} now belongs to another process "
            f"(start tick {now}, expected {ref.start_ticks}); no signal was sent"
        )


def send(ref: ProcessRef, sig: signal.Signals, proc: str = PROC) -> SignalResult:
    """Send ``sig`` to the process ``ref`` names, never to a reused pid.

    Raises:
        InvalidArgument: pid or start_ticks missing.
        NotFound: the process exited.
        ProcessRestarted: the pid belongs to another process now.
        AccessDenied: the sidecar may not signal it (needs the same UID or CAP_KILL).
    """
    if ref.pid <= 0 or ref.start_ticks <= 0:
        raise InvalidArgument("a signal needs the process's pid and start_ticks (its identity)")
    opener = getattr(os, "pidfd_open", None)
    try:
        if opener is None:
            _check(proc, ref)
            os.kill(ref.pid, sig)
            return SignalResult(True, "kill", sig.name)
        try:
            pidfd = opener(ref.pid)
        except ProcessLookupError:
            raise NotFound(f"no process {ref.pid} (it exited)") from None
        except OSError as e:
            if e.errno not in (errno.ENOSYS, errno.EPERM):  # seccomp or old kernel: use kill
                raise
            _check(proc, ref)
            os.kill(ref.pid, sig)
            return SignalResult(True, "kill", sig.name)
        try:
            _check(proc, ref)  # after the open: the pidfd now names this very process
            signal.pidfd_send_signal(pidfd, sig)
        finally:
            os.close(pidfd)
        return SignalResult(True, "pidfd_send_signal", sig.name)
    except PermissionError:
        raise AccessDenied(
            f"the sidecar may not signal pid {ref.pid}: needs the same UID or CAP_KILL"
        ) from None
    except ProcessLookupError:
        raise NotFound(f"no process {ref.pid} (it exited before the signal)") from None
