"""Interfaces, routes, DNS config and counters, checked against ``ip`` in a test netns."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

from agent import _net_info
from protos import network_pb2
from tests.integration.test_network_netns import NetnsPod, netns_pod

__all__ = ["netns_pod"]


def _call(pod: NetnsPod, method: str, request: object) -> object:
    c = pod.sidecar.client
    return getattr(c.network, method)(request, metadata=c.metadata, timeout=15)


def test_interfaces_match_ip_addr(netns_pod: NetnsPod) -> None:
    """Names, indexes, MTU, MAC, state and every v4/v6 address match ``ip -j addr``."""
    resp = _call(netns_pod, "ListInterfaces", network_pb2.ListInterfacesRequest())
    assert isinstance(resp, network_pb2.ListInterfacesResponse)
    assert not resp.unavailable
    ours = {
        i.name: (
            i.index,
            i.mtu,
            i.mac,
            i.oper_state,
            sorted((a.family, a.address, a.prefix_len, a.scope) for a in i.addresses),
        )
        for i in resp.interfaces
    }
    theirs = {
        i["ifname"]: (
            i["ifindex"],
            i["mtu"],
            i.get("address", ""),
            i["operstate"],
            sorted(
                (a["family"], a["local"], a["prefixlen"], a["scope"])
                for a in i.get("addr_info", [])
            ),
        )
        for i in json.loads(netns_pod.run("ip", "-j", "addr"))
    }
    assert ours == theirs
    veth = next(i for i in resp.interfaces if i.name == "bsveth0")
    assert veth.mtu == 1400 and "UP" in veth.flags
    assert ("inet", "10.77.0.1", 24) in {
        (a.family, a.address, a.prefix_len) for a in veth.addresses
    }
    assert ("inet6", "fd77::1", 64) in {(a.family, a.address, a.prefix_len) for a in veth.addresses}


def test_interface_counters_move_with_traffic(netns_pod: NetnsPod) -> None:
    """Loopback rx/tx counters come from the pod's namespace and grow when the app talks."""

    def lo() -> network_pb2.Interface:
        resp = _call(netns_pod, "ListInterfaces", network_pb2.ListInterfacesRequest())
        return next(i for i in resp.interfaces if i.name == "lo")  # type: ignore[attr-defined]

    before = lo()
    assert netns_pod.app_command(f"connect {netns_pod.info['tcp4']} 2") == "ok"
    after = lo()
    assert after.rx_packets > before.rx_packets and after.tx_bytes > before.tx_bytes


def test_routes_match_ip_route(netns_pod: NetnsPod) -> None:
    """IPv4 and IPv6 routes (main table) match ``ip -j route`` and ``ip -j -6 route``."""
    resp = _call(netns_pod, "ListRoutes", network_pb2.ListRoutesRequest())
    assert isinstance(resp, network_pb2.ListRoutesResponse)
    ours = {
        (r.family, r.destination, r.gateway, r.interface) for r in resp.routes if r.table == "main"
    }
    theirs = set()
    for family, argv in (("inet", ("ip", "-j", "route")), ("inet6", ("ip", "-j", "-6", "route"))):
        for r in json.loads(netns_pod.run(*argv)):
            dst = r["dst"]
            if dst != "default" and "/" not in dst:
                dst += "/32" if family == "inet" else "/128"
            theirs.add((family, dst, r.get("gateway", ""), r.get("dev", "")))
    assert ours == theirs
    assert ("inet", "10.78.0.0/16", "10.77.0.2", "bsveth0") in ours
    assert ("inet6", "fd78::/64", "fd77::2", "bsveth0") in ours
    metric = next(r.metric for r in resp.routes if r.destination == "10.78.0.0/16")
    assert metric == 7


def test_proc_fallback_interfaces_and_routes(netns_pod: NetnsPod) -> None:
    """Without rtnetlink, /proc/<pid>/net still gives names, counters, v6 addresses and routes,
    and names what it cannot tell."""
    fallback = _net_info._interfaces_from_proc(netns_pod.pid, "/proc")
    names = {i.name for i in fallback.interfaces}
    assert names == {"lo", "bsveth0", "bsveth1"}
    veth = next(i for i in fallback.interfaces if i.name == "bsveth0")
    assert ("inet6", "fd77::1", 64) in {(a.family, a.address, a.prefix_len) for a in veth.addresses}
    assert {u.field for u in fallback.unavailable} >= {"addresses.inet", "mtu"}
    routes = {
        (r.family, r.destination, r.gateway)
        for r in _net_info._routes_from_proc(netns_pod.pid, "/proc")
    }
    assert ("inet", "10.78.0.0/16", "10.77.0.2") in routes
    assert ("inet6", "fd78::/64", "fd77::2") in routes


def test_dns_config_is_the_targets(netns_pod: NetnsPod) -> None:
    """resolv.conf and hosts come from the app's root (its mount namespace), parsed and raw."""
    resp = _call(netns_pod, "GetDnsConfig", network_pb2.GetDnsConfigRequest())
    assert isinstance(resp, network_pb2.DnsConfig)
    assert list(resp.nameservers) == ["127.0.0.1"]
    assert list(resp.search) == ["example.test"]
    assert list(resp.options) == ["ndots:2"]
    assert resp.resolv_conf == Path(f"/etc/netns/{netns_pod.name}/resolv.conf").read_text()
    assert "db.example.test" in resp.hosts
    host_nsswitch = Path("/etc/nsswitch.conf")
    if host_nsswitch.exists():
        assert resp.nsswitch_conf == host_nsswitch.read_text()
    else:
        assert any(u.field == "/etc/nsswitch.conf" for u in resp.unavailable)


def test_counters_with_deltas(netns_pod: NetnsPod) -> None:
    """Counters are the namespace's /proc/net/snmp + netstat, and deltas count what happened
    in the window (connections are made all through it, so the delta is at least one and
    at most what was made)."""
    result: list[network_pb2.Counters] = []
    t = threading.Thread(
        target=lambda: result.append(
            _call(netns_pod, "GetCounters", network_pb2.GetCountersRequest(delta_window_ms=1000))  # type: ignore[arg-type]
        )
    )
    t.start()
    made = 0
    while t.is_alive():
        assert netns_pod.app_command(f"connect {netns_pod.info['tcp4']} 1") == "ok"
        made += 1
        time.sleep(0.05)
    t.join(10)
    counters = {(c.group, c.name): c for c in result[0].counters}
    assert result[0].delta_window_ms == 1000
    active = counters["Tcp", "ActiveOpens"]
    assert active.HasField("delta") and 1 <= active.delta <= made
    assert ("TcpExt", "ListenOverflows") in counters
    assert counters["Tcp", "RetransSegs"].value >= 0
    snmp = Path(f"/proc/{netns_pod.pid}/net/snmp").read_text().splitlines()
    tcp_head = next(line for line in snmp if line.startswith("Tcp:")).split()
    tcp_vals = [line for line in snmp if line.startswith("Tcp:")][1].split()
    assert active.value <= int(tcp_vals[tcp_head.index("ActiveOpens")])
