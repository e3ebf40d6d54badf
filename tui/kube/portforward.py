"""Port-forward to the sidecar: one local listener, one API port-forward per connection.

Like ``kubectl port-forward``, each accepted local connection gets its own
port-forward stream (here a ``v4.channel.k8s.io`` websocket opened through
the kubernetes client, on a fresh ApiClient: see config.Cluster.stream_core).
gRPC reconnects on its own when a connection drops; the forwarder then opens
a new stream, re-resolving the pod (a deployment's pod may have been
replaced), with exponential backoff after consecutive failures so a dead pod
is not hammered. RBAC refusals are not retried: they will not fix themselves.
"""

from __future__ import annotations

import contextlib
import select
import socket
import threading
from collections.abc import Callable
from typing import Any

from kubernetes.client.exceptions import ApiException
from kubernetes.stream import portforward

from tui.kube.config import Cluster
from tui.kube.errors import KubeError, explain, http_status
from tui.kube.targets import PodTarget

MAX_STREAMS = 32  # one gRPC channel needs one; the cap keeps a runaway client bounded
BACKOFF_FIRST_S = 0.1
BACKOFF_MAX_S = 5.0
CHUNK = 256 * 1024


class Forwarder:
    """A local TCP listener forwarding every connection to a pod port.

    Args:
        cluster: the cluster (its stream clients are used).
        target: the pod; re-resolved through ``refresh`` after a failure.
        remote_port: the port inside the pod (default: the sidecar's).
        refresh: returns a fresh PodTarget (for deploy/selector targets).
        listen: local address to bind (loopback; port 0 = any free port).
    """

    def __init__(
        self,
        cluster: Cluster,
        target: PodTarget,
        remote_port: int = 0,
        refresh: Callable[[], PodTarget] | None = None,
        listen: tuple[str, int] = ("127.0.0.1", 0),
    ) -> None:
        self.cluster = cluster
        self.target = target
        self.remote_port = remote_port or target.port
        self.refresh = refresh
        self.last_error = ""
        """The most recent failure, for a person (empty after a success)."""
        self.connections = 0
        """Port-forward streams opened so far."""
        self.fatal = False
        """True when the last failure will not fix itself (RBAC, credentials, pod gone)."""
        self._failures = 0
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._open: set[socket.socket] = set()
        self._active = 0
        self._listener = socket.create_server(listen)
        self.port: int = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._accept_loop, name="pf-accept", daemon=True)
        self._thread.start()

    @property
    def address(self) -> str:
        """``127.0.0.1:PORT`` for the gRPC client."""
        return f"127.0.0.1:{self.port}"

    def close(self) -> None:
        """Stop listening and cut every forwarded connection."""
        self._closing.set()
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        with self._lock:
            for s in list(self._open):
                with contextlib.suppress(OSError):
                    # Local clients: cut. The pump then ends each stream gently.
                    if isinstance(s, socket.socket):
                        s.shutdown(socket.SHUT_RDWR)
        self._thread.join(timeout=2)

    def __enter__(self) -> Forwarder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _accept_loop(self) -> None:
        while not self._closing.is_set():
            try:
                conn, _peer = self._listener.accept()
            except OSError:
                return  # the listener was closed
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                busy = self._active >= MAX_STREAMS
                if not busy:
                    self._active += 1
            if busy:
                self.last_error = f"more than {MAX_STREAMS} connections at once: refused"
                conn.close()
                continue
            threading.Thread(target=self._serve, args=(conn,), name="pf-conn", daemon=True).start()

    def _backoff(self) -> None:
        with self._lock:
            n = self._failures
        if n:
            self._closing.wait(min(BACKOFF_FIRST_S * (2 ** (n - 1)), BACKOFF_MAX_S))

    def _failed(self, message: str) -> None:
        with self._lock:
            self._failures += 1
            self.last_error = message

    def _open_stream(self) -> tuple[Any, socket.socket]:
        """One port-forward websocket; returns (PortForward, its socket)."""
        t = self.target
        api = self.cluster.stream_core()
        try:
            pf = portforward(
                api.connect_get_namespaced_pod_portforward,
                t.pod,
                t.namespace,
                ports=str(self.remote_port),
            )
        except ApiException as e:
            status = http_status(e)
            err = explain(e, "create", "pods/portforward", t.namespace, t.pod)
            if status == 404 and self.refresh is not None:
                # The pod is gone (rollout, eviction): find its successor next time.
                with contextlib.suppress(KubeError):
                    self.target = self.refresh()
            self.fatal = status in (401, 403) or (status == 404 and self.refresh is None)
            raise err from None
        finally:
            api.api_client.close()
        return pf, pf.socket(self.remote_port)

    def _serve(self, conn: socket.socket) -> None:
        with self._lock:
            self._open.add(conn)
        try:
            self._backoff()
            if self._closing.is_set():
                return
            try:
                pf, remote = self._open_stream()
            except KubeError as e:
                if not (e.status == 404 and self.refresh is not None and self.target.pod):
                    self._failed(str(e))
                    return
                # The pod was replaced and _open_stream found its successor:
                # try it at once, so a rollout costs the user nothing.
                try:
                    pf, remote = self._open_stream()
                except KubeError as again:
                    self._failed(str(again))
                    return
            with self._lock:
                self.connections += 1
                self._open.add(remote)
            try:
                got_data = self._pump(conn, remote)
            finally:
                with self._lock:
                    self._open.discard(remote)
                remote.close()
            error = pf.error(self.remote_port)
            if error:
                self._failed(
                    f"port-forward to pod {self.target.pod} port {self.remote_port} "
                    f"failed: {error.strip()}"
                )
            elif got_data:
                with self._lock:
                    self._failures = 0
                    self.last_error = ""
                    self.fatal = False
        finally:
            with self._lock:
                self._open.discard(conn)
                self._active -= 1
            conn.close()

    def _pump(self, a: socket.socket, b: Any) -> bool:
        """Copy bytes both ways until either side closes; True if the pod sent any.

        ``a`` is the local client, ``b`` the port-forward's socket.
        """
        got = False
        peers = {a.fileno(): (a, b), b.fileno(): (b, a)}
        while not self._closing.is_set():
            try:
                readable, _, _ = select.select(list(peers), [], [], 1.0)
            except (OSError, ValueError):
                return got  # a socket was closed under us (close())
            for fd in readable:
                src, dst = peers[fd]
                try:
                    data = src.recv(CHUNK)
                except OSError:
                    data = b""
                if data and src is b:
                    got = True
                if not data:
                    if src is a:
                        _finish(b)
                    return got
                try:
                    dst.sendall(data)
                except OSError:
                    if dst is a:
                        _finish(b)
                    return got
        _finish(b)
        return got


def _finish(remote: Any, timeout: float = 2.0) -> None:
    """End our half of the port-forward's socket pair without a reset.

    Closing it with bytes unread would reset the kubernetes client's proxy
    thread (ConnectionResetError, printed as a traceback on the user's
    terminal): say EOF, then read until the proxy closes its end.
    """
    with contextlib.suppress(OSError):
        remote.shutdown(socket.SHUT_WR)
        remote.settimeout(timeout)
        while remote.recv(CHUNK):
            pass
