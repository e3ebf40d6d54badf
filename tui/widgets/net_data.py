"""What the Network screen fetches, and how counters become rates over time.

Blocking gRPC calls (run them in a worker). Each section is fetched on its
own: one the sidecar cannot serve shows why in place, the others still fill.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

import grpc

from protos import common_pb2, network_pb2
from tui.client import Client, describe_rpc_error
from tui.widgets import net_format as fmt

T = TypeVar("T")
CALL_TIMEOUT_S = 5.0
HISTORY = 60  # samples per sparkline (5 minutes at the screen's 5 s refresh)


@dataclass
class NetData:
    """One refresh of the Network screen."""

    summary: network_pb2.SocketSummary | None = None
    interfaces: network_pb2.ListInterfacesResponse | None = None
    routes: network_pb2.ListRoutesResponse | None = None
    dns: network_pb2.DnsConfig | None = None
    counters: network_pb2.Counters | None = None
    errors: dict[str, str] = field(default_factory=dict)


def _section(errors: dict[str, str], name: str, call: Callable[[], T]) -> T | None:
    try:
        return call()
    except grpc.RpcError as e:
        errors[name] = describe_rpc_error(e)
        return None


def fetch(client: Client, *, static: bool) -> NetData:
    """Summary and counters always; interfaces, routes and DNS when ``static``."""
    md, t = client.metadata, CALL_TIMEOUT_S
    net = client.network
    data = NetData()
    e = data.errors
    data.summary = _section(
        e,
        "sockets",
        lambda: net.SummarizeSockets(
            network_pb2.SummarizeSocketsRequest(top=30), timeout=t, metadata=md
        ),
    )
    data.counters = _section(
        e,
        "counters",
        lambda: net.GetCounters(network_pb2.GetCountersRequest(), timeout=t, metadata=md),
    )
    data.interfaces = _section(
        e,
        "interfaces",
        lambda: net.ListInterfaces(network_pb2.ListInterfacesRequest(), timeout=t, metadata=md),
    )
    if static:
        data.routes = _section(
            e,
            "routes",
            lambda: net.ListRoutes(network_pb2.ListRoutesRequest(), timeout=t, metadata=md),
        )
        data.dns = _section(
            e,
            "dns",
            lambda: net.GetDnsConfig(network_pb2.GetDnsConfigRequest(), timeout=t, metadata=md),
        )
    return data


SOCKETS_PAGE = 20_000  # the Sockets tab shows at most this many (see net_sockets.MAX_ROWS)


def fetch_sockets(client: Client) -> tuple[list[network_pb2.Socket], bool]:
    """(sockets, cut short) for the Sockets tab: one bounded page."""
    resp = client.network.ListSockets(
        network_pb2.ListSocketsRequest(page=common_pb2.PageRequest(page_size=SOCKETS_PAGE)),
        timeout=CALL_TIMEOUT_S * 2,
        metadata=client.metadata,
    )
    return list(resp.sockets), bool(resp.page.next_page_token or resp.page.truncated)


class CounterHistory:
    """Per-second rates of the key counters between refreshes, bounded."""

    def __init__(self, size: int = HISTORY) -> None:
        self.size = size
        self.rates: dict[str, deque[float]] = {}
        self._last: tuple[float, dict[str, int]] | None = None

    def add(self, counters: network_pb2.Counters, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        values = {f"{c.group}.{c.name}": c.value for c in counters.counters}
        if self._last is not None:
            then, old = self._last
            dt = max(now - then, 1e-3)
            for label, _k, _m in fmt.key_counters(counters.counters):
                if label in values and label in old:
                    rate = max(0.0, (values[label] - old[label]) / dt)
                    self.rates.setdefault(label, deque(maxlen=self.size)).append(rate)
        self._last = (now, values)

    def series(self, label: str) -> list[float]:
        return list(self.rates.get(label, ()))

    def last_rate(self, label: str) -> float | None:
        r = self.rates.get(label)
        return r[-1] if r else None


def probe(client: Client, spec: str, timeout_s: float = 5.0) -> str:
    """Run a probe from a spec ('dns NAME', 'tcp HOST:PORT', 'http URL [-k]'); a text report.

    Raises:
        ValueError: a malformed spec.
        grpc.RpcError: the sidecar refused (e.g. probes disabled).
    """
    kind, target, port, insecure = fmt.parse_probe_spec(spec)
    md, deadline = client.metadata, timeout_s + 3
    ms = int(timeout_s * 1000)
    if kind == "tcp":
        r = client.network.ProbeTcp(
            network_pb2.ProbeTcpRequest(host=target, port=port, timeout_ms=ms),
            metadata=md,
            timeout=deadline,
        )
        if r.connected:
            return (
                f"tcp {target}:{port}: connected to {r.resolved_address} in {r.latency_ms:.1f} ms"
            )
        return f"tcp {target}:{port}: FAILED after {r.latency_ms:.1f} ms: {r.error}"
    if kind == "dns":
        d = client.network.ProbeDns(
            network_pb2.ProbeDnsRequest(name=target, timeout_ms=ms), metadata=md, timeout=deadline
        )
        lines = [f"dns {target} (tried {' '.join(d.search_tried)})"]
        for a in d.answers:
            answer = " ".join(a.addresses) or "-"
            tail = f"  error: {a.error}" if a.error else ""
            lines.append(
                f"  {a.nameserver:<18} {a.rcode or '-':<9} {a.latency_ms:7.1f} ms  {answer}{tail}"
            )
        return "\n".join(lines)
    h = client.network.ProbeHttp(
        network_pb2.ProbeHttpRequest(
            url=target, timeout_ms=ms, max_body_bytes=256, insecure=insecure
        ),
        metadata=md,
        timeout=deadline,
    )
    lines = [
        f"GET {target} ({h.resolved_address}): {h.http_version} {h.status} in {h.latency_ms:.1f} ms"
        if h.status
        else f"GET {target}: FAILED after {h.latency_ms:.1f} ms: {h.error}"
    ]
    lines += [f"  {x.name}: {x.value}" for x in list(h.headers)[:12]]
    if h.body_prefix:
        lines.append("  " + h.body_prefix[:200].decode("utf-8", "replace").replace("\n", "\n  "))
    if h.HasField("certificate"):
        c = h.certificate
        days = (c.not_after.seconds - time.time()) / 86400
        lines.append(f"  certificate: {c.subject} (issuer {c.issuer})")
        lines.append(f"  SANs: {', '.join(c.sans) or '-'}; expires in {days:.0f} days")
        lines.append(f"  verified: {'yes' if c.verified else 'NO: ' + c.verify_error}")
    return "\n".join(lines)
