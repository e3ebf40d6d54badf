"""Interfaces, addresses and routes over rtnetlink (what ``ip`` uses).

The netlink socket is made in the target's network namespace (``_net_ns``),
so the answer is the pod's view, not the sidecar's. ``/sys/class/net`` would
show the namespace that mounted sysfs, which is why it is not used here.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterator

from agent.results.net import Interface, InterfaceAddress, Route

NETLINK_ROUTE = 0
RTM_NEWLINK, RTM_GETLINK = 16, 18
RTM_NEWADDR, RTM_GETADDR = 20, 22
RTM_NEWROUTE, RTM_GETROUTE = 24, 26
NLM_F_REQUEST_DUMP = 0x301
NLMSG_ERROR, NLMSG_DONE = 2, 3

_HDR = struct.Struct("=IHHII")
_IFINFO = struct.Struct("=BxHiII")
_IFADDR = struct.Struct("=BBBBI")
_RTMSG = struct.Struct("=BBBBBBBBI")
_RTA = struct.Struct("=HH")

IFLA_ADDRESS, IFLA_IFNAME, IFLA_MTU, IFLA_OPERSTATE, IFLA_STATS64 = 1, 3, 4, 16, 23
IFA_ADDRESS, IFA_LOCAL = 1, 2
RTA_DST, RTA_OIF, RTA_GATEWAY, RTA_PRIORITY, RTA_PREFSRC, RTA_TABLE = 1, 4, 5, 6, 7, 15

IFF_NAMES = (
    (0x1, "UP"),
    (0x2, "BROADCAST"),
    (0x8, "LOOPBACK"),
    (0x10, "POINTOPOINT"),
    (0x40, "RUNNING"),
    (0x80, "NOARP"),
    (0x100, "PROMISC"),
    (0x1000, "MULTICAST"),
    (0x10000, "LOWER_UP"),
)
OPER_STATES = ("UNKNOWN", "NOTPRESENT", "DOWN", "LOWERLAYERDOWN", "TESTING", "DORMANT", "UP")
SCOPES = {0: "global", 200: "site", 253: "link", 254: "host", 255: "nowhere"}
TABLES = {254: "main", 253: "default", 255: "local"}
# Route types that are not plain forwarding entries, named like `ip route`.
ROUTE_TYPES = {
    2: "local",
    3: "broadcast",
    5: "multicast",
    6: "blackhole",
    7: "unreachable",
    8: "prohibit",
}
RT_TABLE_LOCAL = 255


def _attrs(data: bytes, off: int, end: int) -> dict[int, bytes]:
    out: dict[int, bytes] = {}
    while off + 4 <= end:
        length, kind = _RTA.unpack_from(data, off)
        if length < 4:
            break
        out[kind & 0x3FFF] = data[off + 4 : off + length]
        off += (length + 3) & ~3
    return out


def _dump(sock: socket.socket, mtype: int, body: bytes) -> Iterator[tuple[int, bytes, int, int]]:
    """Yield (type, buffer, payload offset, message end) for each reply message."""
    sock.sendall(_HDR.pack(_HDR.size + len(body), mtype, NLM_F_REQUEST_DUMP, 1, 0) + body)
    while True:
        data = sock.recv(1 << 16)
        if not data:
            return
        off = 0
        while off + 16 <= len(data):
            length, kind, _f, _s, _p = _HDR.unpack_from(data, off)
            if kind == NLMSG_DONE:
                return
            if kind == NLMSG_ERROR:
                err = -struct.unpack_from("=i", data, off + 16)[0]
                if err:
                    raise OSError(err, f"rtnetlink dump failed: errno {err}")
            else:
                yield kind, data, off + 16, off + length
            off += (length + 3) & ~3


def open_route_socket(sock: socket.socket) -> socket.socket:
    sock.settimeout(5.0)
    return sock


def links(sock: socket.socket) -> list[Interface]:
    """Every interface (no addresses yet) with MTU, flags, state and counters."""
    out = []
    for kind, data, off, end in _dump(sock, RTM_GETLINK, _IFINFO.pack(0, 0, 0, 0, 0)):
        if kind != RTM_NEWLINK:
            continue
        _t, index, flags, _c = _IFINFO.unpack_from(data, off)[1:]
        a = _attrs(data, off + _IFINFO.size, end)
        stats = struct.unpack_from("=8Q", a[IFLA_STATS64]) if IFLA_STATS64 in a else (0,) * 8
        oper = a.get(IFLA_OPERSTATE, b"\0")[0]
        out.append(
            Interface(
                name=a.get(IFLA_IFNAME, b"").rstrip(b"\0").decode("utf-8", "replace"),
                index=index,
                mtu=struct.unpack("=I", a[IFLA_MTU])[0] if IFLA_MTU in a else 0,
                mac=":".join(f"{b:02x}" for b in a.get(IFLA_ADDRESS, b"")),
                flags=tuple(n for bit, n in IFF_NAMES if flags & bit),
                oper_state=OPER_STATES[oper] if oper < len(OPER_STATES) else str(oper),
                addresses=(),
                rx_packets=stats[0],
                tx_packets=stats[1],
                rx_bytes=stats[2],
                tx_bytes=stats[3],
                rx_errors=stats[4],
                tx_errors=stats[5],
                rx_dropped=stats[6],
                tx_dropped=stats[7],
            )
        )
    return out


def addresses(sock: socket.socket) -> dict[int, list[InterfaceAddress]]:
    """Addresses by interface index."""
    out: dict[int, list[InterfaceAddress]] = {}
    for kind, data, off, end in _dump(sock, RTM_GETADDR, _IFADDR.pack(0, 0, 0, 0, 0)):
        if kind != RTM_NEWADDR:
            continue
        family, plen, _flags, scope, index = _IFADDR.unpack_from(data, off)
        a = _attrs(data, off + _IFADDR.size, end)
        raw = a.get(IFA_LOCAL) or a.get(IFA_ADDRESS)
        if raw is None or family not in (socket.AF_INET, socket.AF_INET6):
            continue
        out.setdefault(index, []).append(
            InterfaceAddress(
                family="inet" if family == socket.AF_INET else "inet6",
                address=socket.inet_ntop(family, raw),
                prefix_len=plen,
                scope=SCOPES.get(scope, str(scope)),
            )
        )
    return out


def routes(sock: socket.socket, names: dict[int, str]) -> list[Route]:
    """Routes of every table but ``local`` (kernel-managed, like ``ip route``)."""
    out = []
    for family in (socket.AF_INET, socket.AF_INET6):
        for kind, data, off, end in _dump(
            sock, RTM_GETROUTE, _RTMSG.pack(family, 0, 0, 0, 0, 0, 0, 0, 0)
        ):
            if kind != RTM_NEWROUTE:
                continue
            fam, dlen, _sl, _tos, table, _proto, scope, rtype, _fl = _RTMSG.unpack_from(data, off)
            a = _attrs(data, off + _RTMSG.size, end)
            if RTA_TABLE in a:
                table = struct.unpack("=I", a[RTA_TABLE])[0]
            if table == RT_TABLE_LOCAL:
                continue
            dst = a.get(RTA_DST)
            destination = (
                "default"
                if dst is None and dlen == 0
                else f"{socket.inet_ntop(fam, dst or bytes(4 if fam == socket.AF_INET else 16))}/{dlen}"
            )
            if rtype in ROUTE_TYPES:
                destination = f"{ROUTE_TYPES[rtype]} {destination}"
            gw = a.get(RTA_GATEWAY)
            src = a.get(RTA_PREFSRC)
            oif = struct.unpack("=i", a[RTA_OIF])[0] if RTA_OIF in a else 0
            out.append(
                Route(
                    family="inet" if fam == socket.AF_INET else "inet6",
                    destination=destination,
                    gateway=socket.inet_ntop(fam, gw) if gw else "",
                    interface=names.get(oif, str(oif) if oif else ""),
                    metric=struct.unpack("=I", a[RTA_PRIORITY])[0] if RTA_PRIORITY in a else 0,
                    scope=SCOPES.get(scope, str(scope)),
                    source=socket.inet_ntop(fam, src) if src else "",
                    table=TABLES.get(table, str(table)),
                )
            )
    return out
