"""Resolve a probe's host name the way the app would: its /etc/hosts, then its DNS.

The sidecar's own resolver reads the sidecar's /etc/resolv.conf and
/etc/hosts. In a Kubernetes pod those match the app's, but not in every
setup (a sandbox, hostAliases edited in one image, a custom dnsPolicy), so
TCP and HTTP probes resolve with the target's files (read confined by
``dns_config``) and the DNS client, in the pod's network namespace.
"""

from __future__ import annotations

import ipaddress
import socket

from agent._dns_probe import SocketFactory, probe_dns
from agent.results.net import DnsConfig


class ResolveError(OSError):
    """The name does not resolve with the target's config; the message says how it was tried."""


def _from_hosts(hosts: str, name: str) -> str | None:
    wanted = name.rstrip(".").lower()
    for raw in hosts.splitlines():
        fields = raw.split("#", 1)[0].split()
        if len(fields) >= 2 and wanted in (f.lower() for f in fields[1:]):
            return fields[0]
    return None


def resolve(name: str, config: DnsConfig, make: SocketFactory, timeout: float) -> tuple[int, str]:
    """(address family, address) for ``name`` as the target resolves it.

    Raises:
        ResolveError: not in the target's /etc/hosts and no nameserver gave an address.
    """
    try:
        ip = ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        pass
    else:
        return (socket.AF_INET6 if ip.version == 6 else socket.AF_INET), str(ip)
    found = _from_hosts(config.hosts, name)
    if found is not None:
        return (socket.AF_INET6 if ":" in found else socket.AF_INET), found
    if not config.nameservers:
        raise ResolveError(
            f"cannot resolve {name}: not in the target's /etc/hosts and it has no nameserver"
        )
    errors = []
    for rtype, family in (("A", socket.AF_INET), ("AAAA", socket.AF_INET6)):
        result = probe_dns(
            make,
            name,
            nameservers=config.nameservers,
            search=config.search,
            options=config.options,
            record_type=rtype,
            timeout=timeout,
        )
        for answer in result.answers:
            if answer.addresses:
                return family, answer.addresses[0]
            errors.append(f"{answer.nameserver}: {answer.error or answer.rcode}")
        if all(a.error for a in result.answers):
            break  # no server answered at all: asking for AAAA would only wait again
    raise ResolveError(
        f"cannot resolve {name} with the target's resolv.conf ({'; '.join(errors[:3])})"
    )
