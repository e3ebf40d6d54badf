"""What the sidecar is allowed to see: uid, capabilities, kernel features."""

from __future__ import annotations

import ctypes
import errno
import os
from dataclasses import dataclass

from agent._common import PROC

# linux/capability.h, in bit order.
CAP_NAMES = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
    "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW",
    "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
    "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ",
    "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
)  # fmt: skip

SYS_OPENAT2 = 437  # same number on x86_64 and aarch64 (asm-generic)


@dataclass(frozen=True, slots=True)
class Access:
    """The sidecar's own access, for Info.GetInfo."""

    uid: int
    gid: int
    capabilities: tuple[str, ...]
    openat2: bool
    pidfd: bool


def effective_capabilities(pid: int | str = "self") -> tuple[str, ...]:
    """Names of the effective capabilities of ``pid`` (CapEff in status)."""
    with open(f"{PROC}/{pid}/status", "rb") as f:
        for line in f:
            if line.startswith(b"CapEff:"):
                mask = int(line.split()[1], 16)
                return tuple(n for i, n in enumerate(CAP_NAMES) if mask >> i & 1)
    return ()


def has_openat2() -> bool:
    """True when the kernel implements openat2(2) (Linux >= 5.6, not seccomp-blocked)."""
    libc = ctypes.CDLL(None, use_errno=True)
    # A NULL how pointer: a kernel with openat2 answers EFAULT, one without ENOSYS.
    rc = libc.syscall(SYS_OPENAT2, -100, b"/", None, ctypes.c_size_t(24))
    if rc >= 0:
        os.close(rc)
        return True
    return ctypes.get_errno() != errno.ENOSYS


def has_pidfd() -> bool:
    """True when pidfd_open(2) works here (Linux >= 5.3)."""
    opener = getattr(os, "pidfd_open", None)
    if opener is None:
        return False
    try:
        fd = opener(os.getpid())
    except OSError:
        return False
    os.close(fd)
    return True


def access() -> Access:
    """The sidecar's uid, gid, capabilities and kernel features."""
    return Access(
        uid=os.geteuid(),
        gid=os.getegid(),
        capabilities=effective_capabilities(),
        openat2=has_openat2(),
        pidfd=has_pidfd(),
    )
