"""Linux system calls Python 3.11 lacks: setns, unshare, mount, prctl (via ctypes).

Imports nothing from borescope. Every call raises ``OSError`` with the real
errno on failure.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

CLONE_NEWNS = 0x00020000
CLONE_NEWNET = 0x40000000
MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18
PR_SET_PDEATHSIG = 1
PR_SET_NAME = 15
PR_SET_NO_NEW_PRIVS = 38

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def _check(ret: int, what: str) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def setns(fd: int, nstype: int) -> None:
    """Move the calling thread into the namespace ``fd`` refers to."""
    _check(_libc.setns(fd, nstype), "setns")


def unshare(flags: int) -> None:
    """Give the calling process new namespaces of the kinds in ``flags``."""
    _check(_libc.unshare(flags), "unshare")


def mount(source: str | None, target: str, fstype: str | None, flags: int) -> None:
    """mount(2); ``source``/``fstype`` may be None (remounts, propagation changes)."""
    _check(
        _libc.mount(
            source.encode() if source is not None else None,
            target.encode(),
            fstype.encode() if fstype is not None else None,
            ctypes.c_ulong(flags),
            None,
        ),
        f"mount {source or ''} on {target}",
    )


def bind(source: str, target: str, *, readonly: bool, extra: int = 0) -> None:
    """Bind-mount ``source`` on ``target``; read-only takes a second remount call."""
    mount(source, target, None, MS_BIND)
    if readonly or extra:
        flags = MS_REMOUNT | MS_BIND | extra | (MS_RDONLY if readonly else 0)
        mount(None, target, None, flags)


def prctl(option: int, arg: int | bytes) -> None:
    """prctl(2) with one argument."""
    _check(_libc.prctl(option, arg, 0, 0, 0), "prctl")


def set_comm(name: str) -> None:
    """Set the calling thread's comm (what ps and /proc/PID/stat show)."""
    prctl(PR_SET_NAME, name.encode()[:15])
