"""Plain text formatting of Network messages, shared by the CLI and the Network screen.

Every string from the target goes through ``sanitize`` here, so callers can
print the results as they are.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

from protos import network_pb2
from tui.sanitize import sanitize

PROTO_NAMES = {1: "tcp", 2: "udp", 3: "u_str", 4: "u_dgr", 5: "u_seq"}
FAMILY_NAMES = {1: "inet", 2: "inet6", 3: "unix"}
#: Counters worth watching at 3 a.m., in display order: (group, name, what it means).
KEY_COUNTERS = (
    ("Tcp", "RetransSegs", "segments retransmitted"),
    ("TcpExt", "ListenOverflows", "accept queue full: SYNs dropped"),
    ("TcpExt", "ListenDrops", "SYNs dropped at a listener"),
    ("TcpExt", "TCPReqQFullDrop", "SYNs dropped: SYN queue full"),
    ("TcpExt", "TCPReqQFullDoCookies", "SYN cookies sent: SYN queue full"),
    ("TcpExt", "TCPTimeouts", "retransmission timeouts"),
    ("Tcp", "AttemptFails", "connects that failed"),
    ("Tcp", "EstabResets", "established connections reset"),
    ("Tcp", "ActiveOpens", "outgoing connections"),
    ("Tcp", "PassiveOpens", "incoming connections"),
    ("Tcp", "CurrEstab", "connections established now"),
    ("TcpExt", "TCPAbortOnTimeout", "connections aborted on timeout"),
    ("TcpExt", "TW", "TIME_WAIT sockets finished"),
    ("Udp", "RcvbufErrors", "UDP receive buffer overflows"),
    ("Udp", "NoPorts", "UDP to a closed port"),
    ("Ip", "OutNoRoutes", "packets with no route"),
)


def endpoint(address: str, port: int) -> str:
    """'10.0.0.1:80', '[::1]:80', or '*' pieces for wildcards."""
    if not address and not port:
        return "*"
    wildcard = address in ("0.0.0.0", "::")  # noqa: S104 (displaying, not binding)
    host = "*" if wildcard else sanitize(address)
    if ":" in host:
        host = f"[{host}]"
    return f"{host}:{port if port else '*'}"


def local(s: network_pb2.Socket) -> str:
    return (
        sanitize(s.unix_path or "*") if s.family == 3 else endpoint(s.local_address, s.local_port)
    )


def remote(s: network_pb2.Socket) -> str:
    return "*" if s.family == 3 else endpoint(s.remote_address, s.remote_port)


def owners(s: network_pb2.Socket) -> str:
    """'python(1234,fd=5)' for each owner; '' when none is visible."""
    return ",".join(f"{sanitize(o.name)}({o.process.pid},fd={o.fd})" for o in s.owners)


def proto(s: network_pb2.Socket) -> str:
    name = PROTO_NAMES.get(s.protocol, "?")
    return f"{name}6" if s.family == 2 else name


def socket_row(s: network_pb2.Socket) -> list[str]:
    """[proto, state, recv-q, send-q, local, remote, process] like ``ss``."""
    return [proto(s), s.state, str(s.recv_queue), str(s.send_queue), local(s), remote(s), owners(s)]


SOCKET_HEADERS = ("PROTO", "STATE", "RECV-Q", "SEND-Q", "LOCAL", "REMOTE", "PROCESS")


def remote_row(r: network_pb2.RemoteCount) -> list[str]:
    where = (
        endpoint(r.remote_address, r.remote_port)
        if r.remote_port
        else f"{sanitize(r.remote_address)} (inbound)"
    )
    states = " ".join(f"{sanitize(s.state)}={s.count}" for s in r.states)
    return [where, str(r.count), states]


def address_list(i: network_pb2.Interface) -> str:
    return " ".join(f"{sanitize(a.address)}/{a.prefix_len}" for a in i.addresses)


def route_row(r: network_pb2.Route) -> list[str]:
    return [
        r.family,
        sanitize(r.destination),
        sanitize(r.gateway) or "-",
        sanitize(r.interface) or "-",
        str(r.metric),
        r.scope,
        sanitize(r.source) or "-",
        r.table or "-",
    ]


ROUTE_HEADERS = ("FAMILY", "DESTINATION", "GATEWAY", "DEV", "METRIC", "SCOPE", "SRC", "TABLE")


def key_counters(
    counters: Iterable[network_pb2.Counter],
) -> list[tuple[str, network_pb2.Counter | None, str]]:
    """The KEY_COUNTERS present in a sample: (label, counter or None, meaning)."""
    by = {(c.group, c.name): c for c in counters}
    return [(f"{g}.{n}", by.get((g, n)), meaning) for g, n, meaning in KEY_COUNTERS]


class ProbeSpec(NamedTuple):
    """A parsed probe: kind ("dns", "tcp", "http"), target, port (tcp), insecure (https)."""

    kind: str
    target: str
    port: int = 0
    insecure: bool = False


def parse_probe_spec(spec: str) -> ProbeSpec:
    """'dns NAME' | 'tcp HOST:PORT' | 'http URL [-k]' -> ProbeSpec.

    Raises:
        ValueError: the spec does not have one of those shapes (message says which).
    """
    kind, _, rest = spec.strip().partition(" ")
    rest = rest.strip()
    kind = kind.lower()
    if kind not in ("dns", "tcp", "http", "https") or not rest:
        raise ValueError("probe spec must be 'dns NAME', 'tcp HOST:PORT' or 'http URL [-k]'")
    if kind == "tcp":
        host, sep, port = rest.rpartition(":")
        if not sep or not port.isdigit() or not host:
            raise ValueError(f"tcp probe needs HOST:PORT, got {rest!r}")
        return ProbeSpec("tcp", host.strip("[]"), int(port))
    if kind in ("http", "https"):
        words = rest.split()
        insecure = any(w in ("-k", "--insecure", "insecure") for w in words[1:])
        url = words[0] if "://" in words[0] else f"{kind}://{words[0]}"
        return ProbeSpec("http", url, 0, insecure)
    return ProbeSpec("dns", rest)
