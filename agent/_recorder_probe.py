"""What the flight recorder reads each sample: process stats, cgroup counters, listening ports.

Every reader here is cheap (a handful of small /proc and cgroupfs reads) and
treats a vanished process as "gone", never as an error.
"""

from __future__ import annotations

import os
import socket
import struct
from dataclasses import dataclass

from agent._common import PAGE_SIZE, parse_stat, read_bytes

CGROUP_ROOTS = ("/sys/fs/cgroup", "/sys/fs/cgroup/unified")
TCP_LISTEN = "0A"
MAX_FDS_COUNTED = 65536


@dataclass(frozen=True, slots=True)
class ProcSample:
    """One process at one sample."""

    pid: int
    start_ticks: int
    comm: str
    state: str
    cpu_ticks: int  # utime + stime
    rss_bytes: int
    fds: int  # -1 when unreadable
    exit_code: int  # field 52 (a zombie's wait status), 0 otherwise


def read_proc(proc: str, pid: int, *, count_fds: bool = True) -> ProcSample | None:
    """A process's sample, or None when it is gone."""
    try:
        comm, f = parse_stat(read_bytes(f"{proc}/{pid}/stat"))
    except (FileNotFoundError, ProcessLookupError, ValueError):
        return None
    # proc(5): utime 14, stime 15, starttime 22, rss 24, exit_code 52 -> index N - 3.
    exit_code = int(f[49]) if len(f) > 49 else 0
    fds = -1
    if count_fds:
        try:
            fds = min(len(os.listdir(f"{proc}/{pid}/fd")), MAX_FDS_COUNTED)
        except PermissionError:
            fds = -1  # another UID without CAP_SYS_PTRACE: unknown, not zero
        except (FileNotFoundError, ProcessLookupError):
            return None
    return ProcSample(
        pid=pid,
        start_ticks=int(f[19]),
        comm=comm,
        state=f[0].decode("ascii", "replace"),
        cpu_ticks=int(f[11]) + int(f[12]),
        rss_bytes=int(f[21]) * PAGE_SIZE,
        fds=fds,
        exit_code=exit_code,
    )


def cgroup_paths(proc: str, pid: int) -> dict[str, str]:
    """controller -> cgroup path for ``pid`` ("" key = the v2 unified hierarchy)."""
    try:
        raw = read_bytes(f"{proc}/{pid}/cgroup").decode("utf-8", "replace")
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return {}
    out: dict[str, str] = {}
    for line in raw.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        if parts[1] == "":
            out[""] = parts[2]
        for ctl in parts[1].split(","):
            if ctl:
                out[ctl] = parts[2]
    return out


def _read_kv(path: str) -> dict[str, int] | None:
    try:
        raw = read_bytes(path, 8192)
    except OSError:
        return None
    out: dict[str, int] = {}
    for line in raw.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].lstrip(b"-").isdigit():
            out[parts[0].decode()] = int(parts[1])
    return out


def _candidates(paths: dict[str, str], v1: str, v2_file: str, v1_file: str) -> list[str]:
    out: list[str] = []
    v2 = paths.get("")
    if v2 is not None and v2 != "/":
        out += [f"{r}{v2}/{v2_file}" for r in CGROUP_ROOTS]
    p1 = paths.get(v1)
    if p1 is not None:
        out.append(f"/sys/fs/cgroup/{v1}{p1.rstrip('/')}/{v1_file}")
    return out


def oom_kills(paths: dict[str, str]) -> int | None:
    """The cgroup's OOM-kill counter: v2 memory.events ``oom_kill``, v1 memory.oom_control."""
    for path in _candidates(paths, "memory", "memory.events", "memory.oom_control"):
        kv = _read_kv(path)
        if kv is not None and "oom_kill" in kv:
            return kv["oom_kill"]
    return None


def throttled(paths: dict[str, str]) -> int | None:
    """The cgroup's throttled-period counter (cpu.stat ``nr_throttled``, v2 or v1)."""
    for ctl in ("cpu", "cpu,cpuacct"):
        for path in _candidates(paths, ctl, "cpu.stat", "cpu.stat"):
            kv = _read_kv(path)
            if kv is not None and "nr_throttled" in kv:
                return kv["nr_throttled"]
    return None


def memory_usage(paths: dict[str, str]) -> int | None:
    """The cgroup's memory usage in bytes (v2 memory.current, v1 memory.usage_in_bytes)."""
    for path in _candidates(paths, "memory", "memory.current", "memory.usage_in_bytes"):
        try:
            return int(read_bytes(path, 64))
        except (OSError, ValueError):
            continue
    return None


def _addr(hex_addr: str) -> str:
    ip_hex, port_hex = hex_addr.split(":")
    raw = bytes.fromhex(ip_hex)
    if len(raw) == 4:
        ip = socket.inet_ntop(socket.AF_INET, struct.pack("<I", int(ip_hex, 16)))
    else:
        # /proc/net/tcp6 prints the address as four host-order 32-bit words.
        words = struct.unpack("<4I", raw)
        ip = socket.inet_ntop(socket.AF_INET6, struct.pack(">4I", *words))
    return f"[{ip}]:{int(port_hex, 16)}" if ":" in ip else f"{ip}:{int(port_hex, 16)}"


def listening(proc: str, pid: int) -> dict[str, int] | None:
    """Listening TCP sockets and bound UDP sockets in ``pid``'s network namespace.

    Returns:
        {"tcp 0.0.0.0:8080": socket inode, "udp [::]:53": inode, ...}, or None when unreadable.
    """
    out: dict[str, int] = {}
    readable = False
    for proto, name in (("tcp", "tcp"), ("tcp", "tcp6"), ("udp", "udp"), ("udp", "udp6")):
        try:
            raw = read_bytes(f"{proc}/{pid}/net/{name}", 4 << 20)
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        readable = True
        for line in raw.decode("ascii", "replace").splitlines()[1:]:
            f = line.split()
            if len(f) < 4:
                continue
            if proto == "tcp" and f[3] != TCP_LISTEN:
                continue
            if proto == "udp" and set(f[2].replace(":", "")) != {"0"}:
                continue  # a connected UDP socket is a client, not a listener
            try:
                out[f"{proto} {_addr(f[1])}"] = int(f[9]) if len(f) > 9 else 0
            except (ValueError, OSError):
                continue
    return out if readable else None


def socket_owner(proc: str, pids: list[int], inode: int) -> tuple[int | None, bool]:
    """The first of ``pids`` holding socket ``inode`` (a bounded fd scan).

    Returns:
        (pid or None, whether every pid's fds could be read: False means "unknown").
    """
    complete = True
    if not inode:
        return None, False
    want = f"socket:[{inode}]"
    for pid in pids[:256]:
        try:
            fds = os.listdir(f"{proc}/{pid}/fd")
        except PermissionError:
            complete = False
            continue
        except OSError:
            continue  # exited
        for n in fds[:MAX_FDS_COUNTED]:
            try:
                if os.readlink(f"{proc}/{pid}/fd/{n}") == want:
                    return pid, True
            except OSError:
                continue
    return None, complete
