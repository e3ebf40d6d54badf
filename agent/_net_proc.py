"""The /proc/net text tables: the fallback when no sock_diag socket can be made.

``/proc/<pid>/net/{tcp,tcp6,udp,udp6,unix}`` of a process show its network
namespace. Slower than sock_diag with many sockets (the kernel formats every
line), and ambiguous for unix paths holding a newline, so ``_net_sockets``
prefers sock_diag and reads these only when it must.
"""

from __future__ import annotations

import socket
import sys
from collections.abc import Iterable, Iterator

from agent._net_diag import OwnersOf
from agent.results.net import (
    INET,
    TCP,
    UNIX,
    UNIX_DGRAM,
    UNIX_SEQPACKET,
    UNIX_STREAM,
    Socket,
    SocketOwner,
)

# include/net/tcp_states.h, named like the kernel (and netstat) does.
TCP_STATES = {
    1: "ESTABLISHED",
    2: "SYN_SENT",
    3: "SYN_RECV",
    4: "FIN_WAIT1",
    5: "FIN_WAIT2",
    6: "TIME_WAIT",
    7: "CLOSE",
    8: "CLOSE_WAIT",
    9: "LAST_ACK",
    10: "LISTEN",
    11: "CLOSING",
    12: "NEW_SYN_RECV",
}
# A UDP socket in TCP_CLOSE is simply not connected; ss calls that UNCONN.
UDP_STATES = {**TCP_STATES, 7: "UNCONN"}
# include/uapi/linux/net.h socket_state; a stream socket with __SO_ACCEPTCON listens.
UNIX_STATES = {1: "UNCONN", 2: "SYN_SENT", 3: "ESTABLISHED", 4: "CLOSING"}
UNIX_TYPES = {1: UNIX_STREAM, 2: UNIX_DGRAM, 5: UNIX_SEQPACKET}
SO_ACCEPTCON = 0x10000

_LITTLE = sys.byteorder == "little"


def _v4(hexaddr: str, cache: dict[str, str]) -> str:
    addr = cache.get(hexaddr)
    if addr is None:
        raw = bytes.fromhex(hexaddr)
        # The kernel prints the 32-bit word in host byte order.
        addr = socket.inet_ntop(socket.AF_INET, raw[::-1] if _LITTLE else raw)
        cache[hexaddr] = addr
    return addr


def _v6(hexaddr: str, cache: dict[str, str]) -> str:
    addr = cache.get(hexaddr)
    if addr is None:
        raw = bytes.fromhex(hexaddr)
        if _LITTLE:  # four host-order 32-bit words
            raw = b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4))
        addr = socket.inet_ntop(socket.AF_INET6, raw)
        cache[hexaddr] = addr
    return addr


def read_table(path: str) -> Iterator[str]:
    """Lines of a /proc/net table but the header, read in chunks ([] when absent).

    A generator: a consumer that stops early (the socket bound) stops the read.
    """
    try:
        f = open(path, "rb", buffering=0)  # noqa: SIM115 (closed below; a generator)
    except FileNotFoundError:
        return  # e.g. no IPv6 in this kernel
    with f:
        rest = b""
        header = True
        while True:
            chunk = f.read(1 << 20)
            if not chunk:
                break
            lines = (rest + chunk).split(b"\n")
            rest = lines.pop()
            for line in lines:
                if header:
                    header = False
                    continue
                yield line.decode("utf-8", "replace")
        if rest and not header:
            yield rest.decode("utf-8", "replace")


def _no_owners(inode: int) -> tuple[SocketOwner, ...]:
    return ()


def parse_inet(
    lines: Iterable[str], family: int, protocol: int, owners_of: OwnersOf = _no_owners
) -> Iterator[Socket]:
    """Sockets from lines of /proc/net/{tcp,tcp6,udp,udp6} (header already removed)."""
    conv = _v4 if family == INET else _v6
    states = TCP_STATES if protocol == TCP else UDP_STATES
    cache: dict[str, str] = {}
    for line in lines:
        f = line.split()
        if len(f) < 10:
            continue
        laddr, lport = f[1].split(":")
        raddr, rport = f[2].split(":")
        txq, rxq = f[4].split(":")
        st = int(f[3], 16)
        inode = int(f[9])
        yield Socket(
            family,
            protocol,
            states.get(st, f"UNKNOWN_{st}"),
            conv(laddr, cache),
            int(lport, 16),
            conv(raddr, cache),
            int(rport, 16),
            int(rxq, 16),
            int(txq, 16),
            inode,
            int(f[7]),
            owners_of(inode) if inode else (),
        )


def parse_unix(lines: Iterable[str], owners_of: OwnersOf = _no_owners) -> Iterator[Socket]:
    """Sockets from lines of /proc/net/unix (header already removed).

    The fallback only: the kernel prints paths raw, so a path holding a
    newline can forge an entry here. unix_diag (``_net_diag.parse_unix``) is
    used whenever a diag socket can be made in the pod's namespace.
    """
    for line in lines:
        f = line.split(None, 7)
        if len(f) < 7:
            continue
        try:
            flags, kind_no, state_no = int(f[3], 16), int(f[4], 16), int(f[5], 16)
            inode = int(f[6])
        except ValueError:
            continue  # the tail of a path that held a newline: not an entry
        kind = UNIX_TYPES.get(kind_no, UNIX_STREAM)
        state = "LISTEN" if flags & SO_ACCEPTCON else UNIX_STATES.get(state_no, "UNKNOWN")
        path = f[7] if len(f) > 7 else ""
        yield Socket(UNIX, kind, state, path, 0, "", 0, 0, 0, inode, 0, owners_of(inode), path)
