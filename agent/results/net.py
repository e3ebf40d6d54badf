"""Results about the pod's network namespace: sockets, interfaces, routes, DNS, probes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from agent.results.pod import ProcessRef, Unavailable

# Families and protocols use the proto's enum numbers so conversion is a copy.
INET = 1
INET6 = 2
UNIX = 3

TCP = 1
UDP = 2
UNIX_STREAM = 3
UNIX_DGRAM = 4
UNIX_SEQPACKET = 5


class SocketOwner(NamedTuple):
    """One file descriptor holding a socket.

    A NamedTuple, not a frozen dataclass like the other results: a listing
    builds tens of thousands of these per call, and a NamedTuple is built about
    three times faster than a frozen dataclass's ``__init__`` (which sets each
    field through ``object.__setattr__``). It is just as immutable and typed.
    """

    process: ProcessRef
    fd: int
    name: str  # comm
    container_id: str


class Socket(NamedTuple):
    """One socket from sock_diag or /proc/<pid>/net/{tcp,tcp6,udp,udp6,unix}.

    ``owners`` is empty when no visible process holds it (TIME_WAIT, a kernel
    socket, or a process the sidecar may not inspect). A NamedTuple for the
    same reason as ``SocketOwner``.
    """

    family: int
    protocol: int
    state: str
    local_address: str
    local_port: int
    remote_address: str
    remote_port: int
    recv_queue: int
    send_queue: int
    inode: int
    uid: int
    owners: tuple[SocketOwner, ...] = ()
    unix_path: str = ""


@dataclass(frozen=True, slots=True)
class SocketList:
    """A listing of sockets and what could not be seen.

    ``truncated``: the listing bound (``MAX_SOCKETS``) cut it short.
    """

    sockets: tuple[Socket, ...]
    sampled_at: float
    unavailable: tuple[Unavailable, ...] = ()
    truncated: bool = False


@dataclass(frozen=True, slots=True)
class RemoteCount:
    """Connections to one remote endpoint, with their states."""

    remote_address: str
    remote_port: int
    count: int
    states: tuple[tuple[str, int], ...]


@dataclass(frozen=True, slots=True)
class SocketSummary:
    """Counts by state and by remote endpoint, plus the listeners."""

    by_state: tuple[tuple[str, int], ...]
    by_remote: tuple[RemoteCount, ...]
    total: int
    listeners: tuple[Socket, ...]


@dataclass(frozen=True, slots=True)
class InterfaceAddress:
    """An address on an interface."""

    family: str  # "inet" | "inet6"
    address: str
    prefix_len: int
    scope: str


@dataclass(frozen=True, slots=True)
class Interface:
    """A network interface of the pod's namespace and its counters."""

    name: str
    index: int
    mtu: int
    mac: str
    flags: tuple[str, ...]
    oper_state: str
    addresses: tuple[InterfaceAddress, ...]
    rx_bytes: int = 0
    rx_packets: int = 0
    rx_errors: int = 0
    rx_dropped: int = 0
    tx_bytes: int = 0
    tx_packets: int = 0
    tx_errors: int = 0
    tx_dropped: int = 0


@dataclass(frozen=True, slots=True)
class InterfaceList:
    interfaces: tuple[Interface, ...]
    unavailable: tuple[Unavailable, ...] = ()


@dataclass(frozen=True, slots=True)
class Route:
    """One route (main table) from /proc/<pid>/net/route or ipv6_route."""

    family: str
    destination: str  # "default" or CIDR
    gateway: str
    interface: str
    metric: int
    scope: str = ""
    source: str = ""
    table: str = "main"


@dataclass(frozen=True, slots=True)
class DnsConfig:
    """The target's resolver config, read from its root."""

    nameservers: tuple[str, ...]
    search: tuple[str, ...]
    options: tuple[str, ...]
    resolv_conf: str
    hosts: str
    nsswitch_conf: str
    unavailable: tuple[Unavailable, ...] = ()


@dataclass(frozen=True, slots=True)
class Counter:
    """One kernel counter; ``delta`` is set when two samples were taken."""

    group: str
    name: str
    value: int
    delta: int | None = None


@dataclass(frozen=True, slots=True)
class Counters:
    sampled_at: float
    counters: tuple[Counter, ...]
    delta_window_ms: int = 0


@dataclass(frozen=True, slots=True)
class NameserverAnswer:
    """What one nameserver said (or why it said nothing)."""

    nameserver: str
    addresses: tuple[str, ...]
    rcode: str
    latency_ms: float
    error: str = ""


@dataclass(frozen=True, slots=True)
class DnsProbe:
    answers: tuple[NameserverAnswer, ...]
    search_tried: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class TcpProbe:
    connected: bool
    latency_ms: float
    error: str
    resolved_address: str


@dataclass(frozen=True, slots=True)
class Certificate:
    """A peer certificate summary (returned even when verification fails)."""

    subject: str
    issuer: str
    sans: tuple[str, ...]
    not_before: float  # epoch seconds; 0 when unknown
    not_after: float
    verified: bool
    verify_error: str = ""


@dataclass(frozen=True, slots=True)
class HttpProbe:
    status: int
    latency_ms: float
    headers: tuple[tuple[str, str], ...]
    body_prefix: bytes
    certificate: Certificate | None
    error: str
    http_version: str
    resolved_address: str = ""
