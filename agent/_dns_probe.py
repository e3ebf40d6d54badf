"""A small UDP DNS client: ask each of the target's nameservers, separately.

glibc stops at the first server that answers, which hides the one that is
slow or broken; here every nameserver gets the query (in parallel) and its
answer, rcode and latency are reported one by one. The sockets are made in
the pod's network namespace (``_net_ns``).
"""

from __future__ import annotations

import os
import socket
import struct
import threading
import time
from collections.abc import Callable

from agent.errors import InvalidArgument
from agent.results.net import DnsProbe, NameserverAnswer

RCODES = ("NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED")
QTYPES = {"A": 1, "AAAA": 28}
MAX_NAMESERVERS = 3  # glibc's MAXNS: later lines in resolv.conf are ignored by the app too
_HEADER = struct.Struct("!HHHHHH")

SocketFactory = Callable[[int, int], socket.socket]


def encode_query(qid: int, name: str, qtype: int) -> bytes:
    """A recursive query for ``name`` (a fully qualified name, dot optional)."""
    labels = [lab for lab in name.rstrip(".").split(".") if lab]
    out = bytearray(_HEADER.pack(qid, 0x0100, 1, 0, 0, 0))
    for lab in labels:
        raw = lab.encode("idna") if not lab.isascii() else lab.encode()
        if len(raw) > 63:
            raise InvalidArgument(f"DNS label {lab!r} is longer than 63 bytes")
        out += bytes([len(raw)]) + raw
    out += b"\0" + struct.pack("!HH", qtype, 1)
    return bytes(out)


def _skip_name(data: bytes, off: int) -> int:
    while True:
        n = data[off]
        if n == 0:
            return off + 1
        if n & 0xC0 == 0xC0:  # compression pointer ends the name
            return off + 2
        off += n + 1


def decode_response(data: bytes, qid: int, qtype: int) -> tuple[str, tuple[str, ...]]:
    """(rcode name, addresses of type ``qtype``) from a reply.

    Raises:
        ValueError: not a reply to our query, or malformed.
    """
    rid, flags, qd, an, _ns, _ar = _HEADER.unpack_from(data)
    if rid != qid or not flags & 0x8000:
        raise ValueError("reply id or QR bit does not match the query")
    rcode = flags & 0xF
    name = RCODES[rcode] if rcode < len(RCODES) else f"RCODE{rcode}"
    if flags & 0x0200:
        name += " (truncated)"
    off = _HEADER.size
    for _ in range(qd):
        off = _skip_name(data, off) + 4
    addrs = []
    for _ in range(an):
        off = _skip_name(data, off)
        rtype, _cls, _ttl, rdlen = struct.unpack_from("!HHIH", data, off)
        off += 10
        rdata = data[off : off + rdlen]
        off += rdlen
        if rtype == qtype == 1 and rdlen == 4:
            addrs.append(socket.inet_ntop(socket.AF_INET, rdata))
        elif rtype == qtype == 28 and rdlen == 16:
            addrs.append(socket.inet_ntop(socket.AF_INET6, rdata))
    return name, tuple(addrs)


def split_server(server: str) -> tuple[str, int]:
    """ "1.2.3.4", "1.2.3.4:5353", "fd00::1" or "[fd00::1]:5353" -> (host, port)."""
    if server.startswith("["):
        host, _, rest = server[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") else 53
    if server.count(":") == 1:
        host, port = server.split(":")
        return host, int(port)
    return server, 53


def candidates(name: str, search: tuple[str, ...], ndots: int) -> list[str]:
    """Names in the order glibc tries them (search list first for short names)."""
    if name.endswith("."):
        return [name]
    with_search = [f"{name}.{d}" for d in search]
    return [*with_search, name] if name.count(".") < ndots else [name, *with_search]


def _ask(
    make: SocketFactory, server: str, names: list[str], qtype: int, timeout: float
) -> NameserverAnswer:
    try:
        host, port = split_server(server)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = make(family, socket.SOCK_DGRAM)
    except (ValueError, OSError) as e:
        return NameserverAnswer(server, (), "", 0.0, f"cannot query: {e}")
    start = time.monotonic()
    rcode = ""
    try:
        sock.settimeout(timeout)
        sock.connect((host, port))  # connected: ICMP unreachable surfaces as ECONNREFUSED
        for qname in names:
            qid = int.from_bytes(os.urandom(2), "big")
            sock.send(encode_query(qid, qname, qtype))
            while True:
                left = timeout - (time.monotonic() - start)
                if left <= 0:
                    raise TimeoutError
                sock.settimeout(left)
                try:
                    rcode, addrs = decode_response(sock.recv(4096), qid, qtype)
                    break
                except (ValueError, IndexError, struct.error):
                    continue  # a stray or malformed datagram: keep waiting for ours
            if addrs or not rcode.startswith("NXDOMAIN"):
                return NameserverAnswer(server, addrs, rcode, (time.monotonic() - start) * 1000)
        return NameserverAnswer(server, (), rcode, (time.monotonic() - start) * 1000)
    except TimeoutError:
        return NameserverAnswer(
            server, (), rcode, timeout * 1000, f"timeout after {timeout * 1000:.0f} ms"
        )
    except ConnectionRefusedError:
        return NameserverAnswer(
            server, (), rcode, (time.monotonic() - start) * 1000, "connection refused"
        )
    except OSError as e:
        return NameserverAnswer(
            server, (), rcode, (time.monotonic() - start) * 1000, e.strerror or str(e)
        )
    finally:
        sock.close()


def probe_dns(
    make: SocketFactory,
    name: str,
    *,
    nameservers: tuple[str, ...],
    search: tuple[str, ...] = (),
    options: tuple[str, ...] = (),
    record_type: str = "A",
    timeout: float = 2.0,
) -> DnsProbe:
    """Resolve ``name`` at every nameserver, in parallel.

    Raises:
        InvalidArgument: an empty name, an unknown record type, or no nameserver.
    """
    name = name.strip()
    if not name or len(name) > 253:
        raise InvalidArgument("a DNS name of 1 to 253 characters is needed")
    qtype = QTYPES.get(record_type.upper() or "A")
    if qtype is None:
        raise InvalidArgument(f"record type {record_type!r} is not supported (use A or AAAA)")
    if not nameservers:
        raise InvalidArgument("the target's resolv.conf lists no nameserver (and none was given)")
    ndots = 1
    for opt in options:
        if opt.startswith("ndots:") and opt[6:].isdigit():
            ndots = min(int(opt[6:]), 15)
    names = candidates(name, search, ndots)
    results: list[NameserverAnswer | None] = [None] * min(len(nameservers), MAX_NAMESERVERS)

    def run(i: int, server: str) -> None:
        results[i] = _ask(make, server, names, qtype, timeout)

    threads = [
        threading.Thread(target=run, args=(i, s), daemon=True, name="borescope-dns")
        for i, s in enumerate(nameservers[:MAX_NAMESERVERS])
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout + 1.0)
    answers = tuple(
        r
        if r is not None
        else NameserverAnswer(s, (), "", timeout * 1000, "no answer (internal timeout)")
        for r, s in zip(results, nameservers, strict=False)
    )
    return DnsProbe(answers, tuple(names))
