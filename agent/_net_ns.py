"""Sockets created inside the target's network namespace.

In a pod the sidecar already shares the app's network namespace and every
socket it creates is in the right place. When it does not (local mode,
tests, a misconfigured pod), a socket can still be made *in* the target's
namespace: a short-lived thread enters it with ``setns(CLONE_NEWNET)`` (a
per-thread change, needs CAP_SYS_ADMIN), creates the socket and exits. A
socket belongs to the namespace it was created in for its whole life, so the
caller can then use it from any thread.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import socket
import threading

from agent._common import PROC
from agent.errors import AccessDenied

CLONE_NEWNET = 0x40000000

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def netns_id(pid: int | str, proc: str = PROC) -> int | None:
    """Inode of ``pid``'s network namespace; None when it cannot be read."""
    try:
        return os.stat(f"{proc}/{pid}/ns/net").st_ino
    except (PermissionError, FileNotFoundError, ProcessLookupError):
        return None


def same_netns(pid: int, proc: str = PROC) -> bool:
    """True when the sidecar is in ``pid``'s network namespace (the pod case)."""
    theirs = netns_id(pid, proc)
    return theirs is not None and theirs == netns_id("self", proc)


def socket_in_netns(
    pid: int, family: int, kind: int, proto: int = 0, proc: str = PROC
) -> socket.socket:
    """A new socket in the network namespace of ``pid``.

    Raises:
        AccessDenied: the namespace differs and the sidecar may not enter it.
    """
    theirs = netns_id(pid, proc)
    if theirs is None or theirs == netns_id("self", proc):
        # Unreadable namespace link: no ptrace access to the app (another UID,
        # no CAP_SYS_PTRACE). The supported deployment shares the pod's
        # network namespace, so the sidecar's own namespace is the pod's.
        return socket.socket(family, kind, proto)
    result: list[socket.socket] = []
    failure: list[str] = []

    def enter_and_create() -> None:
        try:
            fd = os.open(f"{proc}/{pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        except OSError as e:
            failure.append(f"cannot open the network namespace of pid {pid}: {e.strerror}")
            return
        try:
            if _libc.setns(fd, CLONE_NEWNET) != 0:
                err = ctypes.get_errno()
                failure.append(
                    f"cannot enter the network namespace of pid {pid}: {os.strerror(err)} "
                    "(needs CAP_SYS_ADMIN when the sidecar is not in the pod's namespace)"
                )
                return
        finally:
            os.close(fd)
        result.append(socket.socket(family, kind, proto))

    # This thread ends inside the target namespace; it is never reused.
    t = threading.Thread(target=enter_and_create, name="borescope-netns", daemon=True)
    t.start()
    t.join()
    if failure:
        raise AccessDenied(failure[0])
    return result[0]
