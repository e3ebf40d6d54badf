"""Interfaces, routes and kernel counters of a process's network namespace.

rtnetlink (``_net_rtnl``) answers when a socket can be made in the target's
namespace; otherwise ``/proc/<pid>/net/{dev,if_inet6,route,ipv6_route}`` do,
and what they cannot tell (IPv4 addresses, MTU) is named as unavailable.
"""

from __future__ import annotations

import dataclasses
import re
import socket
import time

from agent import _net_rtnl as rtnl
from agent._common import PROC
from agent._net_ns import socket_in_netns
from agent.errors import AccessDenied, InvalidArgument, NotFound
from agent.results.net import Counter, Counters, Interface, InterfaceAddress, InterfaceList, Route
from agent.results.pod import Unavailable

PTRACE_HINT = "needs the same UID or CAP_SYS_PTRACE"
MAX_DELTA_MS = 10_000
_SNMP6_GROUP = re.compile(r"^(UdpLite6|Icmp6|Udp6|Ip6)")
RTF_GATEWAY = 0x2
# Scope column of /proc/net/if_inet6 (IPV6_ADDR_* >> 4 in include/net/ipv6.h).
_INET6_SCOPES = {"00": "global", "10": "host", "20": "link", "40": "site"}


def _read(pid: int, name: str, proc: str) -> str:
    path = f"{proc}/{pid}/net/{name}"
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "replace")
    except PermissionError:
        raise AccessDenied(f"cannot read {path}: {PTRACE_HINT}") from None
    except (FileNotFoundError, ProcessLookupError):
        if name in ("snmp6", "if_inet6", "ipv6_route"):
            return ""  # no IPv6 in this namespace/kernel: nothing to show, not an error
        raise NotFound(f"{path} does not exist (process {pid} exited?)") from None


def _route_socket(pid: int, proc: str) -> socket.socket | None:
    try:
        s = socket_in_netns(pid, socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, 0, proc)
    except (AccessDenied, OSError):
        return None
    return rtnl.open_route_socket(s)


def interfaces(pid: int, proc: str = PROC) -> InterfaceList:
    """Interfaces of ``pid``'s namespace with addresses, MTU and counters."""
    sock = _route_socket(pid, proc)
    if sock is None:
        return _interfaces_from_proc(pid, proc)
    with sock:
        links = rtnl.links(sock)
        addrs = rtnl.addresses(sock)
    out = [dataclasses.replace(i, addresses=tuple(addrs.get(i.index, ()))) for i in links]
    return InterfaceList(tuple(sorted(out, key=lambda i: i.index)))


def _interfaces_from_proc(pid: int, proc: str) -> InterfaceList:
    v6: dict[str, list[InterfaceAddress]] = {}
    index: dict[str, int] = {}
    for line in _read(pid, "if_inet6", proc).splitlines():
        f = line.split()
        if len(f) < 6:
            continue
        addr = socket.inet_ntop(socket.AF_INET6, bytes.fromhex(f[0]))
        scope = _INET6_SCOPES.get(f[3], f[3])
        v6.setdefault(f[5], []).append(InterfaceAddress("inet6", addr, int(f[2], 16), scope))
        index[f[5]] = int(f[1], 16)
    out = []
    for line in _read(pid, "dev", proc).splitlines()[2:]:
        name, _, rest = line.partition(":")
        name = name.strip()
        n = [int(x) for x in rest.split()]
        if len(n) < 16:
            continue
        out.append(
            Interface(
                name=name,
                index=index.get(name, 0),
                mtu=0,
                mac="",
                flags=(),
                oper_state="UNKNOWN",
                addresses=tuple(v6.get(name, ())),
                rx_bytes=n[0],
                rx_packets=n[1],
                rx_errors=n[2],
                rx_dropped=n[3],
                tx_bytes=n[8],
                tx_packets=n[9],
                tx_errors=n[10],
                tx_dropped=n[11],
            )
        )
    reason = "rtnetlink unavailable in the pod's namespace (the sidecar is outside it and lacks CAP_SYS_ADMIN)"
    return InterfaceList(
        tuple(out),
        (
            Unavailable("addresses.inet", reason),
            Unavailable("mtu", reason),
            Unavailable("flags", reason),
        ),
    )


def routes(pid: int, proc: str = PROC) -> list[Route]:
    """IPv4 and IPv6 routes of ``pid``'s namespace (all tables but ``local``)."""
    sock = _route_socket(pid, proc)
    if sock is None:
        return _routes_from_proc(pid, proc)
    with sock:
        names = {i.index: i.name for i in rtnl.links(sock)}
        return rtnl.routes(sock, names)


def _routes_from_proc(pid: int, proc: str) -> list[Route]:
    out = []
    for line in _read(pid, "route", proc).splitlines()[1:]:
        f = line.split()
        if len(f) < 8:
            continue
        dst = socket.inet_ntop(socket.AF_INET, int(f[1], 16).to_bytes(4, "little"))
        mask = int(f[7], 16).to_bytes(4, "little")
        plen = bin(int.from_bytes(mask, "big")).count("1")
        gw = int(f[2], 16)
        out.append(
            Route(
                family="inet",
                destination="default" if plen == 0 else f"{dst}/{plen}",
                gateway=socket.inet_ntop(socket.AF_INET, gw.to_bytes(4, "little")) if gw else "",
                interface=f[0],
                metric=int(f[6]),
                scope="global" if int(f[3], 16) & RTF_GATEWAY else "link",
            )
        )
    for line in _read(pid, "ipv6_route", proc).splitlines():
        f = line.split()
        if len(f) < 10:
            continue
        dst = socket.inet_ntop(socket.AF_INET6, bytes.fromhex(f[0]))
        plen = int(f[1], 16)
        gw_raw = bytes.fromhex(f[4])
        out.append(
            Route(
                family="inet6",
                destination="default" if plen == 0 else f"{dst}/{plen}",
                gateway=socket.inet_ntop(socket.AF_INET6, gw_raw) if any(gw_raw) else "",
                interface=f[9],
                metric=int(f[5], 16),
                table="",  # /proc/net/ipv6_route does not say which table
            )
        )
    return out


def _snmp(text: str, out: dict[tuple[str, str], int]) -> None:
    """Parse the header/value line pairs of /proc/net/snmp and /proc/net/netstat."""
    lines = text.splitlines()
    for head, vals in zip(lines[::2], lines[1::2], strict=False):
        group, _, names = head.partition(":")
        _g, _, values = vals.partition(":")
        for n, v in zip(names.split(), values.split(), strict=False):
            try:
                out[group, n] = int(v)
            except ValueError:
                continue  # a non-numeric column (none today); not a counter


def _sample(pid: int, proc: str) -> dict[tuple[str, str], int]:
    out: dict[tuple[str, str], int] = {}
    _snmp(_read(pid, "snmp", proc), out)
    _snmp(_read(pid, "netstat", proc), out)
    for line in _read(pid, "snmp6", proc).splitlines():
        f = line.split()
        if len(f) == 2 and f[1].lstrip("-").isdigit():
            m = _SNMP6_GROUP.match(f[0])
            group = m.group(1) if m else "Ip6"
            out[group, f[0][len(group) :] or f[0]] = int(f[1])
    return out


def counters(pid: int, delta_window_ms: int = 0, proc: str = PROC) -> Counters:
    """Kernel counters of ``pid``'s namespace; with deltas over ``delta_window_ms``.

    Raises:
        InvalidArgument: a negative window.
    """
    if delta_window_ms < 0:
        raise InvalidArgument("delta_window_ms must be >= 0")
    window = min(delta_window_ms, MAX_DELTA_MS)
    first = _sample(pid, proc)
    if not window:
        return Counters(time.time(), tuple(Counter(g, n, v) for (g, n), v in first.items()))
    time.sleep(window / 1000)
    second = _sample(pid, proc)
    return Counters(
        time.time(),
        tuple(
            Counter(g, n, v, v - first[g, n] if (g, n) in first else None)
            for (g, n), v in second.items()
        ),
        window,
    )
