"""``borescope net ...`` and ``borescope probe ...``: the pod's network, from the CLI."""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime
from typing import Any

from protos import common_pb2, network_pb2
from tui.cli.common import (
    CliError,
    add_connection_args,
    add_output_arg,
    print_json,
    print_table,
    with_client,
)
from tui.client import Client
from tui.sanitize import sanitize
from tui.units import human_bytes
from tui.widgets import net_format as fmt

VIEWS = ("sockets", "listen", "summary", "ifaces", "routes", "dns", "counters")


def _kw(args: argparse.Namespace, client: Client) -> dict[str, Any]:
    return {"metadata": client.metadata, "timeout": args.timeout}


def _sockets_request(args: argparse.Namespace) -> network_pb2.ListSocketsRequest:
    req = network_pb2.ListSocketsRequest(
        listening_only=args.view == "listen",
        states=[s.upper() for s in args.state],
        skip_owners=args.no_owners,
        process=common_pb2.ProcessRef(pid=args.pid),
        container=common_pb2.ContainerSelector(id=args.container),
    )
    if args.tcp:
        req.protocols.append(network_pb2.SOCKET_PROTOCOL_TCP)
    if args.udp:
        req.protocols.append(network_pb2.SOCKET_PROTOCOL_UDP)
    if args.unix:
        req.families.append(network_pb2.SOCKET_FAMILY_UNIX)
    if args.ipv4:
        req.families.append(network_pb2.SOCKET_FAMILY_INET)
    if args.ipv6:
        req.families.append(network_pb2.SOCKET_FAMILY_INET6)
    if (args.ipv4 or args.ipv6) and not args.unix and not req.protocols:
        req.protocols.extend([network_pb2.SOCKET_PROTOCOL_TCP, network_pb2.SOCKET_PROTOCOL_UDP])
    return req


def _all_sockets(args: argparse.Namespace, client: Client) -> list[network_pb2.Socket]:
    req = _sockets_request(args)
    out: list[network_pb2.Socket] = []
    while True:
        resp = client.network.ListSockets(req, **_kw(args, client))
        out.extend(resp.sockets)
        for u in resp.unavailable:
            print(f"note: {sanitize(u.field)}: {sanitize(u.reason)}", file=sys.stderr)
        if not resp.page.next_page_token:
            return out
        req.page.page_token = resp.page.next_page_token


def view_sockets(args: argparse.Namespace, client: Client) -> int:
    socks = _all_sockets(args, client)
    if args.output == "json":
        print_json(socks)
    elif not socks:
        print("no sockets match")
    else:
        print_table(fmt.SOCKET_HEADERS, (fmt.socket_row(s) for s in socks), right=(2, 3))
    return 0


def view_summary(args: argparse.Namespace, client: Client) -> int:
    s = client.network.SummarizeSockets(
        network_pb2.SummarizeSocketsRequest(top=args.top), **_kw(args, client)
    )
    if args.output == "json":
        print_json(s)
        return 0
    print(f"{s.total} TCP/UDP sockets: " + ", ".join(f"{x.state} {x.count}" for x in s.by_state))
    print()
    print_table(("REMOTE", "CONNS", "STATES"), (fmt.remote_row(r) for r in s.by_remote), right=(1,))
    return 0


def view_ifaces(args: argparse.Namespace, client: Client) -> int:
    resp = client.network.ListInterfaces(network_pb2.ListInterfacesRequest(), **_kw(args, client))
    if args.output == "json":
        print_json(resp)
        return 0
    rows = [
        [
            i.name,
            i.oper_state,
            str(i.mtu or "?"),
            i.mac or "-",
            fmt.address_list(i) or "-",
            f"{human_bytes(i.rx_bytes)}/{i.rx_packets}p err {i.rx_errors} drop {i.rx_dropped}",
            f"{human_bytes(i.tx_bytes)}/{i.tx_packets}p err {i.tx_errors} drop {i.tx_dropped}",
        ]
        for i in resp.interfaces
    ]
    print_table(("NAME", "STATE", "MTU", "MAC", "ADDRESSES", "RX", "TX"), rows, right=(2,))
    for u in resp.unavailable:
        print(f"note: {sanitize(u.field)}: {sanitize(u.reason)}", file=sys.stderr)
    return 0


def view_routes(args: argparse.Namespace, client: Client) -> int:
    resp = client.network.ListRoutes(network_pb2.ListRoutesRequest(), **_kw(args, client))
    if args.output == "json":
        print_json(resp)
    elif not resp.routes:
        print("no routes: the pod's namespace has only loopback (or no interface is up)")
    else:
        print_table(fmt.ROUTE_HEADERS, (fmt.route_row(r) for r in resp.routes), right=(4,))
    return 0


def view_dns(args: argparse.Namespace, client: Client) -> int:
    cfg = client.network.GetDnsConfig(
        network_pb2.GetDnsConfigRequest(container=common_pb2.ContainerSelector(id=args.container)),
        **_kw(args, client),
    )
    if args.output == "json":
        print_json(cfg)
        return 0
    print(f"nameservers: {sanitize(' '.join(cfg.nameservers)) or '(none)'}")
    print(f"search:      {sanitize(' '.join(cfg.search)) or '-'}")
    print(f"options:     {sanitize(' '.join(cfg.options)) or '-'}")
    for title, text in (("/etc/hosts", cfg.hosts), ("/etc/nsswitch.conf", cfg.nsswitch_conf)):
        lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
        print(f"\n{title}:")
        for ln in lines:
            print(f"  {sanitize(ln)}")
    for u in cfg.unavailable:
        print(f"note: {sanitize(u.field)}: {sanitize(u.reason)}", file=sys.stderr)
    return 0


def view_counters(args: argparse.Namespace, client: Client) -> int:
    req = network_pb2.GetCountersRequest(delta_window_ms=int(args.delta * 1000))
    c = client.network.GetCounters(req, timeout=args.timeout + args.delta, metadata=client.metadata)
    if args.output == "json":
        print_json(c)
        return 0
    window = f" (delta over {c.delta_window_ms} ms)" if c.delta_window_ms else ""
    if args.all:
        rows = [
            [f"{k.group}.{k.name}", str(k.value), str(k.delta) if k.HasField("delta") else "", ""]
            for k in c.counters
            if k.value or (k.HasField("delta") and k.delta)
        ]
    else:
        rows = [
            [
                label,
                str(k.value) if k else "?",
                str(k.delta) if k and k.HasField("delta") else "",
                meaning,
            ]
            for label, k, meaning in fmt.key_counters(c.counters)
        ]
    print(f"kernel counters of the pod's network namespace{window}")
    print_table(("COUNTER", "VALUE", "DELTA", "MEANING"), rows, right=(1, 2))
    return 0


VIEW_FUNCS = {
    "sockets": view_sockets,
    "listen": view_sockets,
    "summary": view_summary,
    "ifaces": view_ifaces,
    "routes": view_routes,
    "dns": view_dns,
    "counters": view_counters,
}


def run_net(args: argparse.Namespace, client: Client) -> int:
    return VIEW_FUNCS[args.view](args, client)


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))


def run_probe(args: argparse.Namespace, client: Client) -> int:
    """Run one probe; exit 0 when it succeeded, 1 when the target failed it."""
    kw = {"metadata": client.metadata, "timeout": args.timeout + args.probe_timeout + 2}
    if args.kind == "dns":
        dns = client.network.ProbeDns(
            network_pb2.ProbeDnsRequest(
                name=args.probe_target,
                record_type=args.type,
                timeout_ms=_ms(args.probe_timeout),
                nameservers=args.server,
            ),
            **kw,
        )
        if args.output == "json":
            print_json(dns)
        else:
            print(f"tried: {sanitize(' '.join(dns.search_tried))}")
            rows = [
                [
                    a.nameserver,
                    a.rcode or "-",
                    f"{a.latency_ms:.1f}",
                    " ".join(a.addresses) or "-",
                    a.error,
                ]
                for a in dns.answers
            ]
            print_table(("NAMESERVER", "RCODE", "MS", "ANSWER", "ERROR"), rows, right=(2,))
        return 0 if any(a.addresses for a in dns.answers) else 1
    if args.kind == "tcp":
        host, sep, port = args.probe_target.rpartition(":")
        if not sep or not port.isdigit():
            raise CliError(f"tcp probe needs HOST:PORT, got {args.probe_target!r}", 2)
        tcp = client.network.ProbeTcp(
            network_pb2.ProbeTcpRequest(
                host=host.strip("[]"), port=int(port), timeout_ms=_ms(args.probe_timeout)
            ),
            **kw,
        )
        if args.output == "json":
            print_json(tcp)
        elif tcp.connected:
            print(
                f"connected to {sanitize(tcp.resolved_address)}:{port} in {tcp.latency_ms:.1f} ms"
            )
        else:
            print(f"failed after {tcp.latency_ms:.1f} ms: {sanitize(tcp.error)}")
        return 0 if tcp.connected else 1
    url = args.probe_target if "://" in args.probe_target else f"http://{args.probe_target}"
    resp = client.network.ProbeHttp(
        network_pb2.ProbeHttpRequest(
            url=url,
            timeout_ms=_ms(args.probe_timeout),
            max_body_bytes=args.bytes,
            insecure=args.insecure,
        ),
        **kw,
    )
    if args.output == "json":
        print_json(resp)
        return 0 if resp.status else 1
    _print_http(resp)
    return 0 if resp.status and not resp.error else 1


def _print_http(resp: network_pb2.ProbeHttpResponse) -> None:
    if resp.status:
        via = f" ({sanitize(resp.resolved_address)})" if resp.resolved_address else ""
        print(f"{resp.http_version} {resp.status} in {resp.latency_ms:.1f} ms{via}")
        for h in resp.headers:
            print(f"  {sanitize(h.name)}: {sanitize(h.value)}")
        if resp.body_prefix:
            print()
            print(sanitize(resp.body_prefix.decode("utf-8", "replace")))
    else:
        print(f"failed after {resp.latency_ms:.1f} ms: {sanitize(resp.error)}")
    if resp.HasField("certificate"):
        c = resp.certificate
        expires = datetime.fromtimestamp(c.not_after.seconds, UTC)
        days = (c.not_after.seconds - time.time()) / 86400
        print(f"\ncertificate: {sanitize(c.subject)}")
        print(f"  issuer:   {sanitize(c.issuer)}")
        print(f"  SANs:     {sanitize(', '.join(c.sans)) or '-'}")
        print(f"  expires:  {expires:%Y-%m-%d %H:%M} UTC ({days:.0f} days)")
        print(f"  verified: {'yes' if c.verified else 'NO: ' + sanitize(c.verify_error)}")


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "net",
        help="the pod's sockets, listeners, interfaces, routes, DNS config and kernel counters",
        description="Show the pod's network namespace as the app sees it.",
    )
    p.add_argument(
        "view", nargs="?", choices=VIEWS, default="sockets", help="what to show (default: sockets)"
    )
    p.add_argument("-t", "--tcp", action="store_true", help="TCP sockets only")
    p.add_argument("-u", "--udp", action="store_true", help="UDP sockets only")
    p.add_argument("-x", "--unix", action="store_true", help="unix sockets only")
    p.add_argument("-4", dest="ipv4", action="store_true", help="IPv4 only")
    p.add_argument("-6", dest="ipv6", action="store_true", help="IPv6 only")
    p.add_argument(
        "--state", action="append", default=[], help="only this state (repeatable), e.g. TIME_WAIT"
    )
    p.add_argument("--pid", type=int, default=0, help="only sockets held by this process")
    p.add_argument("--container", default="", help="container id or name (default: the app)")
    p.add_argument("--no-owners", action="store_true", help="skip the owner lookup (faster)")
    p.add_argument("--top", type=int, default=20, help="summary: how many remotes")
    p.add_argument(
        "--delta", type=float, default=0.0, help="counters: sample twice this many seconds apart"
    )
    p.add_argument("--all", action="store_true", help="counters: every non-zero counter")
    add_connection_args(p)
    add_output_arg(p)
    p.set_defaults(func=with_client(run_net))

    q = sub.add_parser(
        "probe",
        help="probe DNS, TCP or HTTP(S) from the pod's network namespace (needs allow_probes)",
        description="borescope probe dns NAME | tcp HOST:PORT | http URL",
    )
    q.add_argument("kind", choices=("dns", "tcp", "http"))
    # dest differs from "target": the connection args have a --target of their own.
    q.add_argument("probe_target", metavar="TARGET", help="NAME, HOST:PORT or URL")
    q.add_argument("--type", default="A", choices=("A", "AAAA"), help="dns: record type")
    q.add_argument(
        "--server",
        action="append",
        default=[],
        help="dns: ask this IP[:PORT] instead of resolv.conf's",
    )
    q.add_argument(
        "--insecure", action="store_true", help="http: GET even if the certificate does not verify"
    )
    q.add_argument("--bytes", type=int, default=512, help="http: how much of the body to show")
    q.add_argument("--probe-timeout", type=float, default=2.0, help="probe timeout in seconds")
    add_connection_args(q)
    add_output_arg(q)
    q.set_defaults(func=with_client(run_probe))
