"""Network service: sockets, interfaces, routes, DNS, counters and probes."""

from __future__ import annotations

import dataclasses
import os
import threading
import time
from collections import OrderedDict
from urllib.parse import urlsplit, urlunsplit

import grpc

import agent
from agent._common import parse_stat, read_bytes
from agent.errors import (
    AccessDenied,
    FailedPrecondition,
    InvalidArgument,
    NotAllowed,
    NotFound,
    ProcessRestarted,
)
from agent.results.net import INET, INET6, TCP, UDP, UNIX, DnsConfig, SocketList
from protos import network_pb2, network_pb2_grpc
from sidecar import audit
from sidecar.convert import network as convert
from sidecar.convert.common import timestamp, unavailable
from sidecar.deps import Deps

SERVICE_NAMES = [network_pb2.DESCRIPTOR.services_by_name["Network"].full_name]

MAX_PAGE = 50_000  # ~4 MiB of messages: under the default max_message_bytes
SNAPSHOTS = 2  # listings kept for paging (each up to MAX_SOCKETS); older tokens expire
SNAPSHOT_TTL_S = 60.0
PROBES_OFF = (
    "probes are disabled on this sidecar; enable them with config allow_probes "
    "(BORESCOPE_ALLOW_PROBES=1)"
)


def kinds_for(families: set[int], protocols: set[int]) -> list[str]:
    """Which /proc/net tables a (families, protocols) filter needs ("" = all)."""
    fam = families or {INET, INET6, UNIX}
    proto = protocols or {TCP, UDP, 3, 4, 5}
    out = []
    for name, f, p in (
        ("tcp", INET, TCP),
        ("tcp6", INET6, TCP),
        ("udp", INET, UDP),
        ("udp6", INET6, UDP),
    ):
        if f in fam and p in proto:
            out.append(name)
    if UNIX in fam and proto & {3, 4, 5}:
        out.append("unix")
    return out


class _Snapshots:
    """A few recent listings, so page N+1 comes from the same sample as page N."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: OrderedDict[str, tuple[float, SocketList]] = OrderedDict()

    def put(self, listing: SocketList) -> str:
        key = os.urandom(6).hex()
        with self._lock:
            self._items[key] = (time.monotonic(), listing)
            while len(self._items) > SNAPSHOTS:
                self._items.popitem(last=False)
        return key

    def get(self, key: str) -> SocketList:
        with self._lock:
            item = self._items.get(key)
        if item is None or time.monotonic() - item[0] > SNAPSHOT_TTL_S:
            raise FailedPrecondition("the page token expired (listings are kept 60 s); list again")
        return item[1]


def _check_ref(pid: int, start_ticks: int, proc: str) -> None:
    """Refuse a (pid, start_ticks) that now names another process."""
    try:
        _comm, fields = parse_stat(read_bytes(f"{proc}/{pid}/stat"))
    except (FileNotFoundError, ProcessLookupError):
        raise NotFound(f"process {pid} does not exist (anymore)") from None
    if start_ticks and int(fields[19]) != start_ticks:
        raise ProcessRestarted(
            f"pid {pid} now belongs to another process (it restarted); list again"
        )


def _redact_url(url: str) -> str:
    """The URL without credentials or query (they may carry secrets) for the audit record."""
    parts = urlsplit(url)
    netloc = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


class NetworkServicer(network_pb2_grpc.NetworkServicer):
    """Thin mapping of the Network RPCs onto ``agent``."""

    def __init__(self, deps: Deps) -> None:
        self.deps = deps
        self.snapshots = _Snapshots()
        self.prober = agent.Prober(deps.config.probe_concurrency, self._netns_pid, self._target_dns)

    def _target_dns(self) -> DnsConfig | None:
        """The app's resolver files; None when its root is out of reach."""
        try:
            return agent.dns_config(agent.target_root(self.deps.pod))
        except (NotFound, AccessDenied):
            return None

    def _netns_pid(self, container: str = "") -> int:
        return agent.netns_pid(self.deps.pod, container)

    def ListSockets(
        self, request: network_pb2.ListSocketsRequest, context: grpc.ServicerContext
    ) -> network_pb2.ListSocketsResponse:
        size = min(request.page.page_size or MAX_PAGE, MAX_PAGE)
        token = request.page.page_token
        if token:
            key, _, off = token.partition(":")
            if not off.isdigit():
                raise InvalidArgument(
                    f"invalid page_token {token!r}: pass back next_page_token as-is"
                )
            listing, offset = self.snapshots.get(key), int(off)
        else:
            listing, offset = self._list(request), 0
            key = self.snapshots.put(listing) if len(listing.sockets) > size else ""
        socks = listing.sockets
        out = network_pb2.ListSocketsResponse(
            sampled_at=timestamp(listing.sampled_at),
            unavailable=unavailable(listing.unavailable) if offset == 0 else (),
        )
        convert.sockets(socks[offset : offset + size], out)
        out.page.total = len(socks)
        out.page.truncated = listing.truncated
        if offset + size < len(socks):
            out.page.next_page_token = f"{key}:{offset + size}"
        return out

    def _list(self, request: network_pb2.ListSocketsRequest) -> SocketList:
        pid = request.process.pid
        if pid:
            _check_ref(pid, request.process.start_ticks, self.deps.pod.proc)
        listing = agent.pod_sockets(
            self.deps.pod,
            container_id=request.container.id,
            pid=pid,
            kinds=kinds_for(set(request.families), set(request.protocols)),
            owners=not request.skip_owners,
            listening_only=request.listening_only,
            states=request.states,
        )
        audit.note(container=request.container.id, pid=pid or None)
        socks = listing.sockets
        if request.protocols:  # unix stream vs dgram share one table
            wanted = set(request.protocols)
            socks = tuple(s for s in socks if s.protocol in wanted)
        if request.families:
            families = set(request.families)
            socks = tuple(s for s in socks if s.family in families)
        return dataclasses.replace(listing, sockets=socks)

    def SummarizeSockets(
        self, request: network_pb2.SummarizeSocketsRequest, context: grpc.ServicerContext
    ) -> network_pb2.SocketSummary:
        listing = agent.pod_sockets(self.deps.pod)
        return convert.summary(agent.summarize_sockets(listing.sockets, request.top))

    def ListInterfaces(
        self, request: network_pb2.ListInterfacesRequest, context: grpc.ServicerContext
    ) -> network_pb2.ListInterfacesResponse:
        result = agent.net_interfaces(self._netns_pid(), self.deps.pod.proc)
        return network_pb2.ListInterfacesResponse(
            interfaces=[convert.interface(i) for i in result.interfaces],
            unavailable=unavailable(result.unavailable),
        )

    def ListRoutes(
        self, request: network_pb2.ListRoutesRequest, context: grpc.ServicerContext
    ) -> network_pb2.ListRoutesResponse:
        routes = agent.net_routes(self._netns_pid(), self.deps.pod.proc)
        return network_pb2.ListRoutesResponse(routes=[convert.route(r) for r in routes])

    def GetDnsConfig(
        self, request: network_pb2.GetDnsConfigRequest, context: grpc.ServicerContext
    ) -> network_pb2.DnsConfig:
        root = agent.target_root(self.deps.pod, request.container.id)
        audit.note(
            container=request.container.id, path="/etc/resolv.conf,/etc/hosts,/etc/nsswitch.conf"
        )
        return convert.dns_config(agent.dns_config(root))

    def GetCounters(
        self, request: network_pb2.GetCountersRequest, context: grpc.ServicerContext
    ) -> network_pb2.Counters:
        return convert.counters(
            agent.net_counters(self._netns_pid(), request.delta_window_ms, self.deps.pod.proc)
        )

    def _allow_probes(self) -> None:
        if not self.deps.config.allow_probes:
            raise NotAllowed(PROBES_OFF)

    def ProbeDns(
        self, request: network_pb2.ProbeDnsRequest, context: grpc.ServicerContext
    ) -> network_pb2.ProbeDnsResponse:
        audit.note(
            target=f"dns {request.name} {request.record_type or 'A'}",
            container=request.container.id,
        )
        self._allow_probes()
        servers = tuple(request.nameservers)
        search: tuple[str, ...] = ()
        options: tuple[str, ...] = ()
        if not servers:
            cfg = agent.dns_config(agent.target_root(self.deps.pod, request.container.id))
            servers, search, options = cfg.nameservers, cfg.search, cfg.options
            if not servers:
                reason = "; ".join(f"{u.field}: {u.reason}" for u in cfg.unavailable)
                raise FailedPrecondition(
                    f"the target has no nameserver in /etc/resolv.conf{f' ({reason})' if reason else ''}; "
                    "name one explicitly"
                )
        audit.note(nameservers=",".join(servers))
        return convert.dns_probe(
            self.prober.dns(
                request.name,
                nameservers=servers,
                search=search,
                options=options,
                record_type=request.record_type or "A",
                timeout_ms=request.timeout_ms,
            )
        )

    def ProbeTcp(
        self, request: network_pb2.ProbeTcpRequest, context: grpc.ServicerContext
    ) -> network_pb2.ProbeTcpResponse:
        audit.note(target=f"tcp {request.host}:{request.port}")
        self._allow_probes()
        return convert.tcp_probe(self.prober.tcp(request.host, request.port, request.timeout_ms))

    def ProbeHttp(
        self, request: network_pb2.ProbeHttpRequest, context: grpc.ServicerContext
    ) -> network_pb2.ProbeHttpResponse:
        audit.note(target=f"http {_redact_url(request.url)}")
        self._allow_probes()
        return convert.http_probe(
            self.prober.http(
                request.url, request.timeout_ms, request.max_body_bytes, request.insecure
            )
        )


def register(server: grpc.Server, deps: Deps) -> None:
    network_pb2_grpc.add_NetworkServicer_to_server(NetworkServicer(deps), server)
