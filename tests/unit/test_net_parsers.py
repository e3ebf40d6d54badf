"""Pure parsers and encoders of the Network capability, on known inputs."""

from __future__ import annotations

import socket
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent._dns_config import parse_resolv_conf
from agent._dns_probe import candidates, decode_response, encode_query, split_server
from agent._net_proc import parse_inet, parse_unix
from agent._net_summary import summarize
from agent.errors import InvalidArgument
from agent.results.net import (
    INET,
    INET6,
    TCP,
    UDP,
    UNIX,
    UNIX_DGRAM,
    UNIX_STREAM,
    Socket,
    SocketOwner,
)
from agent.results.pod import ProcessRef
from protos import common_pb2, network_pb2
from sidecar.convert.network import sockets as convert_sockets

TCP4 = [
    "   0: 0100007F:1F90 00000000:0000 0A 00000000:00000003 00:00000000 00000000  1000        0 4242 1 0 100 0 0 10 0",
    "   1: 0100007F:C350 0100007F:1F90 01 0000000A:00000000 02:000000C8 00000000  1000        0 4243 2 0",
    "   2: 0100007F:C351 0100007F:1F90 06 00000000:00000000 03:00000FDA 00000000     0        0 0 3 0",
]
TCP6 = [
    "   0: 00000000000000000000000001000000:1F90 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 5151 1 0",
    "   1: 0000000000000000FFFF00000100007F:0050 0000000000000000FFFF00000200007F:D431 01 00000000:00000000 00:00000000 00000000     0        0 5152 1 0",
]


def test_inet_lines_decode_addresses_ports_states_queues() -> None:
    """/proc/net/tcp: host-order hex addresses, hex ports, kernel state names, tx/rx queues, uid, inode."""
    owner = SocketOwner(ProcessRef(7, 99), 3, "app", "c1")
    out = list(parse_inet(TCP4, INET, TCP, lambda ino: (owner,) if ino == 4242 else ()))
    assert out[0] == Socket(
        INET, TCP, "LISTEN", "127.0.0.1", 8080, "0.0.0.0", 0, 3, 0, 4242, 1000, (owner,)
    )
    assert (out[1].state, out[1].local_port, out[1].remote_port, out[1].send_queue) == (
        "ESTABLISHED",
        50000,
        8080,
        10,
    )
    assert out[2].state == "TIME_WAIT" and out[2].inode == 0 and out[2].owners == ()


def test_inet6_lines_decode_word_order() -> None:
    """/proc/net/tcp6 prints four host-order 32-bit words: ::1 and v4-mapped addresses come out right."""
    out = list(parse_inet(TCP6, INET6, TCP))
    assert (out[0].local_address, out[0].local_port, out[0].remote_address) == ("::1", 8080, "::")
    assert (out[1].local_address, out[1].remote_address, out[1].remote_port) == (
        "::ffff:127.0.0.1",
        "::ffff:127.0.0.2",
        0xD431,
    )


def test_udp_close_is_unconn() -> None:
    """A UDP socket in TCP_CLOSE is shown as UNCONN (what ss calls it), not CLOSE."""
    line = "  5: 0100007F:0035 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 777 2 0 0"
    [s] = parse_inet([line], INET, UDP)
    assert (s.state, s.local_port) == ("UNCONN", 53)


def test_unix_lines_types_states_paths() -> None:
    """/proc/net/unix: listeners by __SO_ACCEPTCON, stream/dgram types, paths with spaces, abstract names."""
    lines = [
        "0000000000000000: 00000002 00000000 00010000 0001 01 100 /run/app server.sock",
        "0000000000000000: 00000003 00000000 00000000 0001 03 101",
        "0000000000000000: 00000002 00000000 00000000 0002 01 102 @abstract\\x00name",
    ]
    a, b, c = parse_unix(lines)
    assert (a.family, a.protocol, a.state, a.unix_path, a.inode) == (
        UNIX,
        UNIX_STREAM,
        "LISTEN",
        "/run/app server.sock",
        100,
    )
    assert (b.state, b.unix_path) == ("ESTABLISHED", "")
    assert (c.protocol, c.state, c.unix_path) == (UNIX_DGRAM, "UNCONN", "@abstract\\x00name")
    # The tail of a path that held a newline is skipped, not a crash.
    assert list(parse_unix(["evil tail with seven or more fields here"])) == []


def test_resolv_conf_parsing() -> None:
    """nameserver lines accumulate; the last search/domain wins; options collected; comments ignored."""
    text = "# hi\nnameserver 10.0.0.10\ndomain old.example\nsearch a.svc b.svc ; tail\nnameserver fd00::53 # v6\noptions ndots:5 timeout:1\n"
    assert parse_resolv_conf(text) == (
        ("10.0.0.10", "fd00::53"),
        ("a.svc", "b.svc"),
        ("ndots:5", "timeout:1"),
    )


def test_search_candidates_follow_ndots() -> None:
    """Short names try the search list first; names with enough dots or a trailing dot go as-is first."""
    assert candidates("db", ("ns.svc", "svc"), 5) == ["db.ns.svc", "db.svc", "db"]
    assert candidates("a.b.c", ("svc",), 2) == ["a.b.c", "a.b.c.svc"]
    assert candidates("fq.dn.", ("svc",), 5) == ["fq.dn."]


def test_split_server_forms() -> None:
    """Nameservers are given as IP, IP:PORT, IPv6, or [IPv6]:PORT; the port defaults to 53."""
    assert split_server("10.0.0.10") == ("10.0.0.10", 53)
    assert split_server("127.0.0.1:5353") == ("127.0.0.1", 5353)
    assert split_server("fd00::53") == ("fd00::53", 53)
    assert split_server("[fd00::53]:5353") == ("fd00::53", 5353)


def _reply(query: bytes, rcode: int, answers: list[tuple[int, bytes]]) -> bytes:
    qid = struct.unpack("!H", query[:2])[0]
    head = struct.pack("!HHHHHH", qid, 0x8180 | rcode, 1, len(answers), 0, 0)
    body = b"".join(b"\xc0\x0c" + struct.pack("!HHIH", t, 1, 60, len(r)) + r for t, r in answers)
    return head + query[12:] + body


def test_dns_reply_decoding_filters_type_and_checks_id() -> None:
    """A/AAAA answers of the asked type are returned (a CNAME is skipped); a reply to another id is refused."""
    q = encode_query(0x1234, "svc.example.test", 1)
    cname = (5, b"\x03foo\x00")
    reply = _reply(
        q, 0, [cname, (1, bytes([10, 0, 0, 7])), (28, socket.inet_pton(socket.AF_INET6, "fd00::7"))]
    )
    assert decode_response(reply, 0x1234, 1) == ("NOERROR", ("10.0.0.7",))
    assert decode_response(reply, 0x1234, 28) == ("NOERROR", ("fd00::7",))
    assert decode_response(_reply(q, 3, []), 0x1234, 1) == ("NXDOMAIN", ())
    with pytest.raises(ValueError):
        decode_response(reply, 0x9999, 1)


@given(st.lists(st.from_regex(r"[a-z0-9-]{1,63}", fullmatch=True), min_size=1, max_size=4))
def test_query_encodes_labels(labels: list[str]) -> None:
    """Every label is length-prefixed, the name ends with a zero byte, then QTYPE and QCLASS IN."""
    q = encode_query(1, ".".join(labels), 28)
    expected = (
        b"".join(bytes([len(lab)]) + lab.encode() for lab in labels)
        + b"\0"
        + struct.pack("!HH", 28, 1)
    )
    assert q[12:] == expected


def test_overlong_label_is_invalid() -> None:
    """A label over 63 bytes cannot be encoded: INVALID_ARGUMENT, not a malformed packet."""
    with pytest.raises(InvalidArgument):
        encode_query(1, "a" * 64 + ".example", 1)


def _tcp(state: str, local_port: int, remote: str, remote_port: int) -> Socket:
    return Socket(INET, TCP, state, "10.0.0.2", local_port, remote, remote_port, 0, 0, 1, 0)


def test_summary_exposes_time_wait_storm_and_hot_remote() -> None:
    """900 connections to one database rank first; a TIME_WAIT storm shows in the state counts;
    inbound clients are grouped by address (port 0)."""
    socks = [_tcp("LISTEN", 8080, "0.0.0.0", 0)]
    socks += [_tcp("ESTABLISHED", 40000 + i, "10.0.0.9", 5432) for i in range(900)]
    socks += [_tcp("TIME_WAIT", 30000 + i, "10.0.0.8", 443) for i in range(300)]
    socks += [_tcp("ESTABLISHED", 8080, "10.0.0.50", 50000 + i) for i in range(7)]
    s = summarize(socks, top=3)
    assert s.total == 1208
    assert s.by_state[0] == ("ESTABLISHED", 907)
    assert ("TIME_WAIT", 300) in s.by_state
    assert [(r.remote_address, r.remote_port, r.count) for r in s.by_remote] == [
        ("10.0.0.9", 5432, 900),
        ("10.0.0.8", 443, 300),
        ("10.0.0.50", 0, 7),
    ]
    assert [x.local_port for x in s.listeners] == [8080]


def test_owner_wire_bytes_equal_built_messages() -> None:
    """The cached-bytes owner encoding yields exactly the message built field by field (fd 0 included)."""
    owners = (
        SocketOwner(ProcessRef(123, 456), 0, "app", "mnt-1"),
        SocketOwner(ProcessRef(123, 456), 70000, "app", "mnt-1"),
        SocketOwner(ProcessRef(9, 0), 5, "wörker", ""),
    )
    s = Socket(INET6, TCP, "ESTABLISHED", "::1", 1, "::1", 2, 3, 4, 5, 6, owners)
    got = network_pb2.ListSocketsResponse()
    convert_sockets([s], got)
    want = network_pb2.Socket(
        family=INET6, protocol=TCP, state="ESTABLISHED", local_address="::1", local_port=1,
        remote_address="::1", remote_port=2, recv_queue=3, send_queue=4, inode=5, uid=6,
        owners=[
            network_pb2.SocketOwner(
                process=common_pb2.ProcessRef(pid=o.process.pid, start_ticks=o.process.start_ticks),
                fd=o.fd, name=o.name, container_id=o.container_id,
            )
            for o in owners
        ],
    )  # fmt: skip
    assert got.sockets[0] == want
