"""TCP, UDP (inet_diag) and unix (unix_diag) sockets over NETLINK_SOCK_DIAG, like ``ss``.

A binary dump is several times cheaper than formatting and parsing
``/proc/net/tcp`` with many sockets: the kernel skips sprintf and each record
is a fixed struct. It is also unambiguous where /proc text is not (a unix
socket path may hold a newline). The netlink socket must live in the target's network
namespace (see ``_net_ns``); callers fall back to ``/proc`` text when it
cannot be made.
"""

from __future__ import annotations

import itertools
import os
import socket
import struct
import sys
from collections.abc import Callable

from agent.results.net import (
    INET,
    INET6,
    TCP,
    UDP,
    UNIX,
    UNIX_DGRAM,
    UNIX_SEQPACKET,
    UNIX_STREAM,
    Socket,
    SocketOwner,
)

NETLINK_SOCK_DIAG = 4
SOCK_DIAG_BY_FAMILY = 20
NLM_F_REQUEST = 0x1
NLM_F_DUMP = 0x300
NLMSG_ERROR = 2
NLMSG_DONE = 3
ALL_STATES = 0xFFFFFFFF
# The kernel sizes dump buffers from the reader's buffer (up to 32 KiB in
# practice); 64 KiB takes every one whole without a costly huge allocation.
RECV_BYTES = 64 << 10

_NLHDR = struct.Struct("=IHHII")
_RTA = struct.Struct("=HH")
# unix_diag (include/uapi/linux/unix_diag.h)
_UNIX_REQ = struct.Struct("=BBHIIIII")  # family, protocol, pad, states, ino, show, cookie[2]
_UNIX_MSG = struct.Struct("=BBBxIII")  # family, type, state, ino, cookie[2]
_RQLEN = struct.Struct("=II")
UNIX_DIAG_NAME, UNIX_DIAG_RQLEN = 0, 4
UNIX_SHOW = 0x1 | 0x10  # UDIAG_SHOW_NAME | UDIAG_SHOW_RQLEN
# sk_state of a unix socket; named as the /proc/net/unix reader names them.
UNIX_DIAG_STATES = {1: "ESTABLISHED", 2: "SYN_SENT", 7: "UNCONN", 10: "LISTEN"}
UNIX_TYPES = {1: UNIX_STREAM, 2: UNIX_DGRAM, 5: UNIX_SEQPACKET}
_REQ = struct.Struct("=BBBBI48s")
# inet_diag_msg: family, state, timer, retrans, sport, dport (network order,
# read natively and swapped below), src[16], dst[16], if, cookie[8],
# expires, rqueue, wqueue, uid, inode.
_MSG = struct.Struct("=BBBBHH16s16sI8sIIIII")
_SWAP = sys.byteorder == "little"
# Header and message in one unpack (one call per socket, not two).
_HDR_MSG = struct.Struct("=IHHII" + _MSG.format.lstrip("="))
# Ports are big-endian but unpacked natively (one struct, one byte order):
# a lookup table swaps them faster than arithmetic per socket.
_PORT = [((p & 0xFF) << 8) | (p >> 8) for p in range(65536)] if _SWAP else list(range(65536))

# The kernel's mini socket for a half-open connection; /proc/net/tcp and ss
# both show it as SYN_RECV.
NEW_SYN_RECV = 12

OwnersOf = Callable[[int], tuple[SocketOwner, ...]]


class DiagUnavailable(Exception):
    """This protocol cannot be dumped over sock_diag here (module missing, ...)."""


def _frame(body: bytes, seq: int) -> bytes:
    flags = NLM_F_REQUEST | NLM_F_DUMP
    return _NLHDR.pack(_NLHDR.size + len(body), SOCK_DIAG_BY_FAMILY, flags, seq, 0) + body


def _request(family: int, protocol: int, seq: int) -> bytes:
    return _frame(_REQ.pack(family, protocol, 0, 0, ALL_STATES, b"\0" * 48), seq)


def parse_unix(bufs: list[bytes], *, owners_of: OwnersOf, out: list[Socket], limit: int) -> None:
    """Append the unix sockets in ``bufs`` (a unix_diag dump) to ``out``.

    Binary, so a socket path holding a newline cannot forge extra entries
    (it can in /proc/net/unix, which prints paths raw).
    """
    new = tuple.__new__
    for data in bufs:
        off = 0
        end = len(data)
        while off + 16 <= end:
            if len(out) >= limit:
                return
            length, mtype = _NLHDR.unpack_from(data, off)[:2]
            if mtype == NLMSG_DONE:
                return
            if mtype == NLMSG_ERROR or length < 16 + _UNIX_MSG.size:
                off += (length + 3) & ~3 if length >= 16 else end
                continue
            _f, kind, st, ino = _UNIX_MSG.unpack_from(data, off + 16)[:4]
            attrs = _attrs(data, off + 16 + _UNIX_MSG.size, off + length)
            off += (length + 3) & ~3
            name = attrs.get(UNIX_DIAG_NAME, b"")
            if name.startswith(b"\0"):  # abstract: shown like ss and /proc do
                path = "@" + name[1:].replace(b"\0", b"@").decode("utf-8", "replace")
            else:
                path = name.rstrip(b"\0").decode("utf-8", "replace")
            rq, wq = _RQLEN.unpack(attrs[UNIX_DIAG_RQLEN]) if UNIX_DIAG_RQLEN in attrs else (0, 0)
            append_args = (
                UNIX,
                UNIX_TYPES.get(kind, UNIX_STREAM),
                UNIX_DIAG_STATES.get(st, f"UNKNOWN_{st}"),
                path,
                0,
                "",
                0,
                rq,
                wq,
                ino,
                0,
                owners_of(ino) if ino else (),
                path,
            )
            out.append(new(Socket, append_args))


def _attrs(data: bytes, off: int, end: int) -> dict[int, bytes]:
    found: dict[int, bytes] = {}
    while off + 4 <= end:
        alen, kind = _RTA.unpack_from(data, off)
        if alen < 4:
            break
        found[kind & 0x3FFF] = data[off + 4 : off + alen]
        off += (alen + 3) & ~3
    return found


_seq = itertools.count(1)


def collect(
    sock: socket.socket, family: int, protocol: int, max_bytes: int = 1 << 62
) -> tuple[list[bytes], bool]:
    """Run one dump and return the raw reply buffers (kernel time, GIL released).

    Split from ``parse`` so a caller can collect in a thread while it scans
    fds, and build sockets (which need the owners) afterwards.

    Returns:
        (buffers, complete); complete is False when ``max_bytes`` cut the dump
        short (the socket then still holds the rest: do not reuse it).

    Raises:
        DiagUnavailable: the kernel refused the dump (e.g. no udp_diag).
    """
    seq = next(_seq) & 0x7FFFFFFF
    if family == UNIX:
        body = _UNIX_REQ.pack(socket.AF_UNIX, 0, 0, ALL_STATES, 0, UNIX_SHOW, 0, 0)
        sock.sendall(_frame(body, seq))
    else:
        af = socket.AF_INET if family == INET else socket.AF_INET6
        sock.sendall(_request(af, protocol_number(protocol), seq))
    bufs: list[bytes] = []
    total = 0
    while True:
        data = sock.recv(RECV_BYTES)
        if not data:
            return bufs, True
        _len, mtype, _f, _s, _p = _NLHDR.unpack_from(data, 0)
        if mtype == NLMSG_ERROR:
            err = -struct.unpack_from("=i", data, 16)[0]
            if err:
                raise DiagUnavailable(f"sock_diag: {os.strerror(err)}")
        bufs.append(data)
        total += len(data)
        # The kernel appends NLMSG_DONE (20 bytes: header + int) to the last
        # buffer; matching our sequence number makes a false match impossible.
        if len(data) >= 20:
            length, mtype, _f, dseq, _p = _NLHDR.unpack_from(data, len(data) - 20)
            if mtype == NLMSG_DONE and length == 20 and dseq == seq:
                return bufs, True
        if total >= max_bytes:
            return bufs, False


def parse(
    bufs: list[bytes],
    family: int,
    protocol: int,
    *,
    states: dict[int, str],
    owners_of: OwnersOf,
    out: list[Socket],
    limit: int = 1 << 62,
) -> None:
    """Append the sockets in ``bufs`` (from ``collect``) to ``out``, up to ``limit`` in all."""
    af = socket.AF_INET if family == INET else socket.AF_INET6
    alen = 4 if family == INET else 16
    # Keyed by the whole 16-byte field (no slice per socket); v4 uses 4 of them.
    cache: dict[bytes, str] = {}
    ntop = socket.inet_ntop
    unpack = _HDR_MSG.unpack_from
    append = out.append
    new = tuple.__new__  # Socket's own __new__ is a Python function: skip it per socket
    port = _PORT
    names = {st: states.get(st) or f"UNKNOWN_{st}" for st in range(256)}
    names[NEW_SYN_RECV] = names[3]
    minimum = _HDR_MSG.size
    for data in bufs:
        if len(out) >= limit:
            return
        off = 0
        end = len(data)
        while off + 16 <= end:
            length, mtype = _NLHDR.unpack_from(data, off)[:2]
            if mtype == NLMSG_DONE:
                return
            if mtype == NLMSG_ERROR or length < minimum:
                off += (length + 3) & ~3 if length >= 16 else end
                continue
            (
                _l,
                _t,
                _fl,
                _sq,
                _pi,
                _f,
                st,
                _tm,
                _r,
                sp,
                dp,
                src,
                dst,
                _if,
                _c,
                _e,
                rq,
                wq,
                uid,
                ino,
            ) = unpack(data, off)
            off += (length + 3) & ~3
            la = cache.get(src)
            if la is None:
                la = cache[src] = ntop(af, src[:alen])
            ra = cache.get(dst)
            if ra is None:
                ra = cache[dst] = ntop(af, dst[:alen])
            append(
                new(
                    Socket,
                    (
                        family,
                        protocol,
                        names[st],
                        la,
                        port[sp],
                        ra,
                        port[dp],
                        rq,
                        wq,
                        ino,
                        uid,
                        owners_of(ino) if ino else (),
                        "",
                    ),
                )
            )


def protocol_number(protocol: int) -> int:
    return socket.IPPROTO_TCP if protocol == TCP else socket.IPPROTO_UDP


def open_diag_socket(factory: Callable[[int, int, int], socket.socket]) -> socket.socket:
    """A NETLINK_SOCK_DIAG socket made by ``factory(family, type, proto)``."""
    sock = factory(socket.AF_NETLINK, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC, NETLINK_SOCK_DIAG)
    sock.settimeout(5.0)  # a dump never blocks this long; a hang is a bug, not a wait
    return sock


__all__ = ["INET", "INET6", "TCP", "UDP", "DiagUnavailable", "collect", "open_diag_socket", "parse"]
