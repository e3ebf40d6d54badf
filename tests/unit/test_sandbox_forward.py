"""The sandbox's port-forward: bytes both ways, half-close, into another network namespace."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest

from sidecar.sandbox.forward import Forwarder

ECHO = """
import socket, sys, threading
s = socket.create_server(("127.0.0.1", 0))
print(s.getsockname()[1], flush=True)
def serve(c):
    with c:
        while data := c.recv(65536):
            c.sendall(data)
while True:
    c, _ = s.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
"""


@pytest.fixture
def echo_server() -> Iterator[int]:
    """A real echo server on the host's loopback; yields its port."""
    with socket.create_server(("127.0.0.1", 0)) as srv:
        port = srv.getsockname()[1]
        stop = threading.Event()

        def serve(c: socket.socket) -> None:
            with c:
                while data := c.recv(65536):
                    c.sendall(data)

        def accept() -> None:
            srv.settimeout(0.1)
            while not stop.is_set():
                try:
                    c, _ = srv.accept()
                except TimeoutError:
                    continue
                threading.Thread(target=serve, args=(c,), daemon=True).start()

        t = threading.Thread(target=accept, daemon=True)
        t.start()
        yield port
        stop.set()
        t.join(2)


def _roundtrip(address: str, payload: bytes) -> bytes:
    host, port = address.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as c:
        sender = threading.Thread(target=lambda: (c.sendall(payload), c.shutdown(socket.SHUT_WR)))
        sender.start()
        got = bytearray()
        while data := c.recv(65536):
            got += data
        sender.join()
    return bytes(got)


def test_bytes_flow_both_ways_and_half_close_passes_on(echo_server: int) -> None:
    """4 MiB sent through the forward come back intact; our half-close ends the echo."""
    fwd = Forwarder("", echo_server)
    try:
        payload = os.urandom(4 << 20)
        assert _roundtrip(fwd.address, payload) == payload
        assert _roundtrip(fwd.address, b"again") == b"again"  # connections are independent
    finally:
        fwd.close()


def test_close_cuts_open_connections_and_stops_listening(echo_server: int) -> None:
    """close() ends live connections (the peer sees EOF) and refuses new ones."""
    fwd = Forwarder("", echo_server)
    host, port = fwd.address.rsplit(":", 1)
    c = socket.create_connection((host, int(port)), timeout=5)
    c.sendall(b"x")
    assert c.recv(1) == b"x"
    fwd.close()
    c.settimeout(5)
    assert c.recv(1) == b""
    c.close()
    with pytest.raises(OSError), socket.create_connection((host, int(port)), timeout=1):
        pass


def test_unreachable_target_closes_the_client_connection() -> None:
    """When nothing listens on the target, the client's connection is closed, not left hanging."""
    with socket.create_server(("127.0.0.1", 0)) as s:
        dead_port = s.getsockname()[1]  # closed on leaving the block: nothing listens there
    fwd = Forwarder("", dead_port)
    try:
        host, port = fwd.address.rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=5) as c:
            c.settimeout(5)
            assert c.recv(1) == b""
    finally:
        fwd.close()


def test_forwards_into_another_network_namespace() -> None:
    """With a netns path, the forward dials 127.0.0.1 of that namespace, not the host's."""
    if os.geteuid() != 0:
        pytest.skip("entering a network namespace needs root")
    host_ns = os.stat("/proc/thread-self/ns/net").st_ino
    p = subprocess.Popen(
        ["unshare", "--net", "sh", "-c", f"ip link set lo up && exec {sys.executable} -c '{ECHO}'"],
        stdout=subprocess.PIPE,
    )
    try:
        assert p.stdout is not None
        port = int(p.stdout.readline())
        # The echo server is not reachable on the host's loopback...
        with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            pass
        # ...but is through the forward into its namespace.
        fwd = Forwarder(f"/proc/{p.pid}/ns/net", port)
        try:
            assert _roundtrip(fwd.address, b"inside") == b"inside"
        finally:
            fwd.close()
        # setns touched only the forward's own threads: this one is still in the host's.
        assert os.stat("/proc/thread-self/ns/net").st_ino == host_ns
    finally:
        p.kill()
        p.wait()


def test_small_writes_are_not_held_back_by_nagle() -> None:
    """Two small writes then a reply (a gRPC call's shape) cross the forward in ms, not 40 ms.

    Without TCP_NODELAY on the forward's sockets the second write waits for the
    peer's delayed ACK: every unary call cost ~42 ms.
    """
    with socket.create_server(("127.0.0.1", 0)) as srv:
        port = srv.getsockname()[1]

        def serve() -> None:
            c, _ = srv.accept()
            with c:
                c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                while True:
                    got = b""
                    while len(got) < 2:
                        data = c.recv(2 - len(got))
                        if not data:
                            return
                        got += data
                    c.sendall(b"ok")

        threading.Thread(target=serve, daemon=True).start()
        fwd = Forwarder("", port)
        try:
            host, fport = fwd.address.rsplit(":", 1)
            with socket.create_connection((host, int(fport)), timeout=5) as c:
                c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                times = []
                for _ in range(15):
                    t = time.perf_counter()
                    c.sendall(b"a")
                    time.sleep(0.002)  # let the forward read it alone, as it reads frames
                    c.sendall(b"b")
                    assert c.recv(2) == b"ok"
                    times.append(time.perf_counter() - t)
        finally:
            fwd.close()
    times.sort()
    assert times[len(times) // 2] < 0.02, (
        f"median round trip {times[len(times) // 2] * 1000:.1f} ms"
    )
