"""Sockets with owners, checked against ``ss`` in a network namespace the test made."""

from __future__ import annotations

import re

import grpc
import pytest

from agent import _net_sockets, process_sockets
from agent.results.net import Socket
from protos import network_pb2
from tests.integration.test_network_netns import NetnsPod, netns_pod

__all__ = ["netns_pod"]

SS_STATES = {
    "ESTAB": "ESTABLISHED",
    "TIME-WAIT": "TIME_WAIT",
    "SYN-SENT": "SYN_SENT",
    "SYN-RECV": "SYN_RECV",
    "FIN-WAIT-1": "FIN_WAIT1",
    "FIN-WAIT-2": "FIN_WAIT2",
    "CLOSE-WAIT": "CLOSE_WAIT",
    "LAST-ACK": "LAST_ACK",
}
PROTO = {1: "tcp", 2: "udp", 3: "u_str", 4: "u_dgr", 5: "u_seq"}


def _endpoint(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    host = host.strip("[]").split("%")[0]
    if host == "*":
        host = "0.0.0.0"
    return host, 0 if port == "*" else int(port)


def _pids(text: str) -> frozenset[int]:
    return frozenset(int(p) for p in re.findall(r"pid=(\d+)", text))


def ss_inet(pod: NetnsPod) -> set[tuple[object, ...]]:
    """(proto, state, local, lport, peer, pport, pids) from ``ss -tanupH``."""
    out = set()
    for line in pod.run("ss", "-tanupH").splitlines():
        f = line.split(None, 6)
        la, lp = _endpoint(f[4])
        ra, rp = _endpoint(f[5])
        out.add(
            (f[0], SS_STATES.get(f[1], f[1]), la, lp, ra, rp, _pids(f[6] if len(f) > 6 else ""))
        )
    return out


def ours_inet(resp: network_pb2.ListSocketsResponse) -> set[tuple[object, ...]]:
    out = set()
    for s in resp.sockets:
        if s.family == network_pb2.SOCKET_FAMILY_UNIX:
            continue
        owners = frozenset(o.process.pid for o in s.owners)
        out.add(
            (
                PROTO[s.protocol],
                s.state,
                s.local_address,
                s.local_port,
                s.remote_address,
                s.remote_port,
                owners,
            )
        )
    return out


def _normalise_any(rows: set[tuple[object, ...]]) -> set[tuple[object, ...]]:
    # ss prints an unconnected v6 peer as [::]:* and a v4 one as 0.0.0.0:*;
    # both mean "no peer", so compare them as one value.
    return {
        (r[0], r[1], r[2], r[3], "any" if r[4] in ("::", "0.0.0.0") else r[4], *r[5:]) for r in rows
    }


def list_all(pod: NetnsPod, **kw: object) -> network_pb2.ListSocketsResponse:
    c = pod.sidecar.client
    return c.network.ListSockets(
        network_pb2.ListSocketsRequest(**kw),  # type: ignore[arg-type]
        metadata=c.metadata,
        timeout=10,
    )


def test_tcp_and_udp_sockets_match_ss_with_owners(netns_pod: NetnsPod) -> None:
    """Every TCP/UDP socket of the pod's namespace (v4 and v6) is listed with the same
    state, endpoints and owning pid as ``ss -tanup`` shows, and none from the sidecar's own namespace."""
    resp = list_all(netns_pod)
    ours = _normalise_any(ours_inet(resp))
    theirs = _normalise_any(ss_inet(netns_pod))
    assert ours == theirs
    info = netns_pod.info
    app = frozenset({netns_pod.pid})
    assert ("tcp", "LISTEN", "127.0.0.1", info["tcp4"], "any", 0, app) in ours
    assert ("tcp", "LISTEN", "::1", info["tcp6"], "any", 0, app) in ours
    assert ("udp", "UNCONN", "::1", info["udp6"], "any", 0, app) in ours
    sidecar_port = int(netns_pod.sidecar.address.rsplit(":", 1)[1])
    assert all(s.local_port != sidecar_port for s in resp.sockets), "host namespace leaked in"


def test_unix_sockets_match_ss(netns_pod: NetnsPod) -> None:
    """Unix sockets carry type, state, path, inode and owner exactly as ``ss -xap`` shows them."""
    resp = list_all(netns_pod, families=[network_pb2.SOCKET_FAMILY_UNIX])
    assert {s.family for s in resp.sockets} == {network_pb2.SOCKET_FAMILY_UNIX}
    ours = {
        (
            PROTO[s.protocol],
            s.state,
            s.unix_path,
            s.inode,
            frozenset(o.process.pid for o in s.owners),
        )
        for s in resp.sockets
        if s.unix_path.startswith(str(netns_pod.workdir))
    }
    theirs = set()
    for line in netns_pod.run("ss", "-xapH").splitlines():
        f = line.split()
        if f[4].startswith(str(netns_pod.workdir)):
            theirs.add((f[0], SS_STATES.get(f[1], f[1]), f[4], int(f[5]), _pids(line)))
    assert ours == theirs
    assert {r[2] for r in ours} == {netns_pod.info["unix"], netns_pod.info["dgram"]}
    listener = next(s for s in resp.sockets if s.unix_path == netns_pod.info["unix"])
    assert listener.state == "LISTEN"
    assert listener.owners[0].fd == netns_pod.info["fds"]["unix"]


def test_filters_by_process_state_and_listening(netns_pod: NetnsPod) -> None:
    """Filtering by pid, by state and to listeners returns exactly the matching sockets."""
    info = netns_pod.info
    listen = list_all(netns_pod, listening_only=True)
    tcp_listen = {
        (s.local_address, s.local_port)
        for s in listen.sockets
        if s.protocol == network_pb2.SOCKET_PROTOCOL_TCP
    }
    assert tcp_listen == {("127.0.0.1", info["tcp4"]), ("::1", info["tcp6"])}
    assert all(s.state in ("LISTEN", "UNCONN") for s in listen.sockets)
    established = list_all(
        netns_pod, states=["ESTABLISHED"], protocols=[network_pb2.SOCKET_PROTOCOL_TCP]
    )
    assert len(established.sockets) == 12  # 5 v4 + 1 v6 connections, both ends each
    mine = list_all(netns_pod, process={"pid": netns_pod.pid})
    assert mine.sockets and all(
        o.process.pid == netns_pod.pid for s in mine.sockets for o in s.owners
    )
    owner = mine.sockets[0].owners[0]
    assert owner.container_id == f"local-{netns_pod.pid}" and owner.name.startswith("python")


def test_restarted_pid_is_refused(netns_pod: NetnsPod) -> None:
    """A (pid, start_ticks) that no longer names the process fails FAILED_PRECONDITION, not a wrong answer."""
    with pytest.raises(grpc.RpcError) as e:
        list_all(netns_pod, process={"pid": netns_pod.pid, "start_ticks": 1})
    assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION


def test_pages_cover_the_listing_once(netns_pod: NetnsPod) -> None:
    """Paging with page_size 3 yields every socket exactly once, from one snapshot."""
    whole = list_all(netns_pod)
    seen: list[int] = []
    token = ""
    while True:
        page = list_all(netns_pod, page={"page_size": 3, "page_token": token})
        assert len(page.sockets) <= 3
        seen.extend(s.inode for s in page.sockets)
        token = page.page.next_page_token
        if not token:
            break
    assert sorted(seen) == sorted(s.inode for s in whole.sockets)
    assert page.page.total == len(whole.sockets)


def test_summary_groups_by_state_and_remote(netns_pod: NetnsPod) -> None:
    """The summary counts states and ranks remotes: 5 connections to one listener stand out."""
    c = netns_pod.sidecar.client
    summary = c.network.SummarizeSockets(
        network_pb2.SummarizeSocketsRequest(top=5), metadata=c.metadata, timeout=10
    )
    states = {s.state: s.count for s in summary.by_state}
    assert states["ESTABLISHED"] == 12 and states["LISTEN"] == 2
    remotes = {(r.remote_address, r.remote_port): r.count for r in summary.by_remote}
    # outbound: 5 connections to the v4 listener; inbound: their accepted ends,
    # grouped by client address (port 0) since every client port differs.
    assert remotes[("127.0.0.1", netns_pod.info["tcp4"])] == 5
    assert remotes[("127.0.0.1", 0)] == 5
    assert summary.by_remote[0].count == 5  # the biggest groups come first
    assert any(
        x.unix_path == netns_pod.info["unix"] for x in summary.listeners
    )  # listed, not counted
    assert summary.total == sum(x.count for x in summary.by_state)
    assert {s.local_port for s in summary.listeners} >= {
        netns_pod.info["tcp4"],
        netns_pod.info["udp4"],
    }


def test_proc_text_and_sock_diag_agree(netns_pod: NetnsPod) -> None:
    """The /proc/net text fallback and the sock_diag path list the same sockets and owners."""
    a = _net_sockets.list_sockets(netns_pod.pid, None, {}, diag=True)
    b = _net_sockets.list_sockets(netns_pod.pid, None, {}, diag=False)

    def key(s: Socket) -> tuple[object, ...]:
        return (
            s.protocol,
            s.family,
            s.state,
            s.local_address,
            s.local_port,
            s.remote_address,
            s.remote_port,
            s.inode,
            s.owners,
        )

    assert sorted(map(key, a.sockets)) == sorted(map(key, b.sockets))


def test_process_sockets_for_process_details(netns_pod: NetnsPod) -> None:
    """``agent.process_sockets(pid)`` (used by process details) lists that process's sockets with fds."""
    socks = process_sockets(netns_pod.pid)
    fds = {o.fd for s in socks for o in s.owners}
    assert netns_pod.info["fds"]["tcp4"] in fds and netns_pod.info["fds"]["unix"] in fds
    assert all(o.process.pid == netns_pod.pid for s in socks for o in s.owners)


@pytest.mark.parametrize("diag", [True, False], ids=["sock_diag", "proc_text"])
def test_listing_is_bounded(netns_pod: NetnsPod, diag: bool) -> None:
    """A listing never holds more than its bound and says when the bound cut it (both paths)."""
    whole = _net_sockets.list_sockets(netns_pod.pid, None, {}, diag=diag)
    assert not whole.truncated and len(whole.sockets) > 5
    cut = _net_sockets.list_sockets(netns_pod.pid, None, {}, diag=diag, limit=3)
    assert cut.truncated and len(cut.sockets) == 3
    exact = _net_sockets.list_sockets(netns_pod.pid, None, {}, diag=diag, limit=len(whole.sockets))
    assert not exact.truncated and len(exact.sockets) == len(whole.sockets)


def test_new_process_gets_owner_and_container_at_once(netns_pod: NetnsPod) -> None:
    """A process started after a listing owns its socket (with its container) in the next
    listing: the cached pid -> container map is refreshed when a new pid appears."""
    list_all(netns_pod)  # warm the map
    script = (
        "import socket,sys; s=socket.socket(); s.bind(('127.0.0.1',0)); s.listen(1); "
        "print(s.getsockname()[1], flush=True); sys.stdin.read()"
    )
    proc, line = netns_pod.spawn(script)
    port = int(line)
    resp = list_all(netns_pod, listening_only=True)
    mine = next(s for s in resp.sockets if s.local_port == port)
    [owner] = mine.owners
    assert owner.process.pid == proc.pid and owner.container_id


FORGER = r"""
import socket, sys
fake = "\n0000000000000000: 00000002 00000000 00010000 0001 01 4242 /forged.sock"
u = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
u.bind("\0bs-real-" + sys.argv[1] + fake); u.listen(1)  # abstract: any bytes
print("ready", flush=True)
sys.stdin.read()
"""


def test_socket_path_cannot_forge_entries(netns_pod: NetnsPod) -> None:
    """A unix socket path with a newline and a fake /proc/net/unix line in it stays one socket
    with that exact path (unix_diag is binary); no forged socket appears."""
    tag = netns_pod.name
    _proc, line = netns_pod.spawn(FORGER, tag)
    assert line.strip() == "ready"
    resp = list_all(netns_pod, families=[network_pb2.SOCKET_FAMILY_UNIX])
    paths = [s.unix_path for s in resp.sockets]
    assert not any(p == "/forged.sock" for p in paths)
    assert not any(s.inode == 4242 for s in resp.sockets)
    [real] = [p for p in paths if p.startswith(f"@bs-real-{tag}")]
    assert real.endswith("/forged.sock") and "\n" in real


def test_unknown_state_is_invalid(netns_pod: NetnsPod) -> None:
    """A misspelt state filter fails INVALID_ARGUMENT listing the known states (not an empty list);
    ss-style spellings (time-wait) are accepted."""
    with pytest.raises(grpc.RpcError) as e:
        list_all(netns_pod, states=["ESTABLISHD"])
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "TIME_WAIT" in (e.value.details() or "")
    found = list_all(netns_pod, states=["time-wait", "listen"]).sockets
    assert found and {s.state for s in found} <= {"TIME_WAIT", "LISTEN"}
