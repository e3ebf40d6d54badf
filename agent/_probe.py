"""Probes from the pod's network namespace: TCP connect and HTTP(S) GET.

Every probe has a timeout and runs under a bounded semaphore; a probe that
cannot get a slot within its timeout fails with TooLarge instead of queueing
without bound. Sockets are made in the target's namespace (``_net_ns``).
"""

from __future__ import annotations

import socket
import ssl
import threading
import time
from collections.abc import Callable
from urllib.parse import SplitResult, urlsplit

from agent._dns_probe import probe_dns
from agent._probe_resolve import resolve
from agent.errors import InvalidArgument, TooLarge
from agent.results.net import Certificate, DnsConfig, DnsProbe, HttpProbe, TcpProbe

Address = tuple[str, int] | tuple[str, int, int, int]
DEFAULT_TIMEOUT_MS = 2000
MAX_TIMEOUT_MS = 30_000
MAX_BODY_BYTES = 64 << 10
DEFAULT_BODY_BYTES = 1024
USER_AGENT = "borescope-probe/1"


def clamp_timeout(ms: int) -> float:
    """Request milliseconds (0 = default) -> seconds within the allowed range."""
    return min(ms or DEFAULT_TIMEOUT_MS, MAX_TIMEOUT_MS) / 1000


def _error_text(e: BaseException, timeout: float) -> str:
    if isinstance(e, TimeoutError | socket.timeout):
        return f"timeout after {timeout * 1000:.0f} ms"
    if isinstance(e, ConnectionRefusedError):
        return "connection refused"
    if isinstance(e, socket.gaierror):
        return f"cannot resolve: {e.strerror}"
    if isinstance(e, ssl.SSLError):
        return f"TLS: {e.reason or e}"
    if isinstance(e, OSError):
        return e.strerror or str(e)
    return str(e)


class Prober:
    """Runs probes from the network namespace of a process, a few at a time.

    Args:
        concurrency: how many probes may run at once (``probe_concurrency``).
        netns_pid: returns the pid whose network namespace probes use.
        dns_config: returns the target's resolver config, so host names
            resolve as the app resolves them (None: the sidecar's resolver).
    """

    def __init__(
        self,
        concurrency: int,
        netns_pid: Callable[[], int],
        dns_config: Callable[[], DnsConfig | None] | None = None,
    ) -> None:
        self._slots = threading.BoundedSemaphore(max(1, concurrency))
        self._concurrency = max(1, concurrency)
        self._netns_pid = netns_pid
        self._dns_config = dns_config

    def _acquire(self, timeout: float) -> None:
        if not self._slots.acquire(timeout=timeout):
            raise TooLarge(
                f"{self._concurrency} probes are already running (config probe_concurrency); "
                "retry when one finishes"
            )

    def _socket(self, family: int, kind: int) -> socket.socket:
        # Lazy (the sidecar builds a Prober at start-up): ctypes.util and its imports.
        from agent._net_ns import socket_in_netns

        return socket_in_netns(self._netns_pid(), family, kind)

    def _resolve(self, host: str, port: int, timeout: float) -> tuple[int, Address]:
        """(family, socket address) of host:port, resolved as the app would."""
        config = self._dns_config() if self._dns_config is not None else None
        if config is not None:
            family, ip = resolve(host, config, self._socket, timeout)
            return family, ((ip, port) if family == socket.AF_INET else (ip, port, 0, 0))
        # The target's files are out of reach: the sidecar's resolver.
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        family, _t, _p, _c, sockaddr = infos[0]
        return family, (str(sockaddr[0]), port)

    def _open(self, family: int, addr: Address, timeout: float) -> socket.socket:
        """A TCP socket in the pod's namespace, connected to ``addr``."""
        sock = self._socket(family, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            sock.connect(addr)
        except BaseException:
            sock.close()
            raise
        return sock

    def _connect(self, host: str, port: int, timeout: float) -> tuple[socket.socket, str]:
        family, addr = self._resolve(host, port, timeout)
        return self._open(family, addr, timeout), addr[0]

    def tcp(self, host: str, port: int, timeout_ms: int = 0) -> TcpProbe:
        """Connect to host:port; the connect latency (resolution excluded) or the error."""
        if not host or not 0 < port < 65536:
            raise InvalidArgument("a probe needs HOST and a PORT between 1 and 65535")
        timeout = clamp_timeout(timeout_ms)
        self._acquire(timeout)
        try:
            try:
                family, addr = self._resolve(host, port, timeout)
            except OSError as e:
                return TcpProbe(False, 0.0, _error_text(e, timeout), "")
            start = time.monotonic()
            try:
                self._open(family, addr, timeout).close()
            except OSError as e:
                return TcpProbe(
                    False, (time.monotonic() - start) * 1000, _error_text(e, timeout), addr[0]
                )
            return TcpProbe(True, (time.monotonic() - start) * 1000, "", addr[0])
        finally:
            self._slots.release()

    def dns(
        self,
        name: str,
        *,
        nameservers: tuple[str, ...],
        search: tuple[str, ...] = (),
        options: tuple[str, ...] = (),
        record_type: str = "A",
        timeout_ms: int = 0,
    ) -> DnsProbe:
        """Ask every nameserver for ``name`` (see ``_dns_probe``)."""
        timeout = clamp_timeout(timeout_ms)
        self._acquire(timeout)
        try:
            return probe_dns(
                self._socket,
                name,
                nameservers=nameservers,
                search=search,
                options=options,
                record_type=record_type,
                timeout=timeout,
            )
        finally:
            self._slots.release()

    def http(
        self, url: str, timeout_ms: int = 0, max_body_bytes: int = 0, insecure: bool = False
    ) -> HttpProbe:
        """GET ``url``: status, headers, the first bytes, and the TLS certificate."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise InvalidArgument(f"not an http(s) URL: {url!r} (e.g. http://service:8080/healthz)")
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            raise InvalidArgument(f"bad port in URL {url!r}") from None
        limit = min(max_body_bytes or DEFAULT_BODY_BYTES, MAX_BODY_BYTES)
        timeout = clamp_timeout(timeout_ms)
        self._acquire(timeout)
        try:
            return self._http(parts, port, limit=limit, insecure=insecure, timeout=timeout)
        finally:
            self._slots.release()

    def _http(
        self, parts: SplitResult, port: int, *, limit: int, insecure: bool, timeout: float
    ) -> HttpProbe:
        scheme, host = parts.scheme, parts.hostname or ""
        target = f"{parts.path or '/'}?{parts.query}" if parts.query else (parts.path or "/")
        start = time.monotonic()
        deadline = start + timeout  # one budget for every step, not a timeout per step
        cert: Certificate | None = None
        addr = ""

        def left() -> float:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            return remaining

        def failed(error: str) -> HttpProbe:
            return HttpProbe(0, (time.monotonic() - start) * 1000, (), b"", cert, error, "", addr)

        try:
            family, sockaddr = self._resolve(host, port, left())
            addr = sockaddr[0]
            sock = self._open(family, sockaddr, left())
        except OSError as e:
            return failed(_error_text(e, timeout))
        import http.client  # lazy: it pulls in the email package (~1 MiB) for HTTP probes only

        conn = http.client.HTTPConnection(host, port, timeout=timeout)
        try:
            if scheme == "https":
                sock, cert, verify_error = self._tls(sock, host, port, insecure, left())
                if verify_error and not insecure:
                    return failed(
                        f"certificate verify failed: {verify_error} (use insecure to GET anyway)"
                    )
            conn.sock = sock
            sock.settimeout(left())
            conn.putrequest("GET", target, skip_accept_encoding=True)
            conn.putheader("User-Agent", USER_AGENT)
            conn.putheader("Accept", "*/*")
            conn.putheader("Connection", "close")
            conn.endheaders()
            resp = conn.getresponse()
            latency = (time.monotonic() - start) * 1000
            sock.settimeout(left())
            body = resp.read(limit)
            version = {9: "HTTP/0.9", 10: "HTTP/1.0", 11: "HTTP/1.1"}.get(
                resp.version, str(resp.version)
            )
            headers = tuple((k, v) for k, v in resp.getheaders())
            return HttpProbe(resp.status, latency, headers, body, cert, "", version, addr)
        except (OSError, http.client.HTTPException) as e:
            return failed(
                _error_text(e, timeout) if isinstance(e, OSError) else f"bad HTTP reply: {e!r}"
            )
        finally:
            conn.close()

    def _tls(
        self, sock: socket.socket, host: str, port: int, insecure: bool, timeout: float
    ) -> tuple[socket.socket, Certificate | None, str]:
        """Handshake with verification; on failure a second one without, for the cert."""
        from agent._probe_tls import certificate_summary  # lazy: tempfile, for HTTPS only

        ctx = ssl.create_default_context()
        try:
            tls = ctx.wrap_socket(sock, server_hostname=host)
            return tls, certificate_summary(tls, verified=True), ""
        except ssl.SSLCertVerificationError as e:
            verify_error = e.verify_message or str(e)
        except OSError:
            sock.close()  # not a certificate problem (protocol, reset): the caller reports it
            raise
        sock.close()
        # The verifying handshake failed: look again without verification so
        # the engineer sees *which* certificate the server presents.
        raw, _addr = self._connect(host, port, timeout)
        loose = ssl.create_default_context()
        loose.check_hostname = False
        loose.verify_mode = ssl.CERT_NONE
        tls = loose.wrap_socket(raw, server_hostname=host)
        cert = certificate_summary(tls, verified=False, verify_error=verify_error)
        if not insecure:
            tls.close()
        return tls, cert, verify_error
