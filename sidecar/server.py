"""The gRPC server: build()/create_server() for tests, serve() for the pod.

Interceptors, outermost first: audit (sees every call, refuses what it cannot
record), auth (deny by default), limits (in flight, deadlines, stream age,
shutdown), errors (agent exceptions -> status codes).

Health (grpc.health.v1) is served on the main port without a token, and
optionally on a separate plaintext ``health_listen`` port with its own two
threads for Kubernetes gRPC probes, so a saturated main pool cannot fail
liveness. On the main port health is exempt from the in-flight limit and the
pool keeps spare threads beyond ``max_concurrent_rpcs`` for it.
"""

from __future__ import annotations

import ctypes
import signal
import threading
from concurrent import futures
from types import FrameType
from typing import Any

import grpc
import structlog
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from sidecar.audit import AuditSink, AuditSinkError
from sidecar.config import Config, ConfigError, is_loopback, token_hashes, validate
from sidecar.deps import Deps
from sidecar.interceptors._wrap import InterceptorBase
from sidecar.interceptors.audit import AuditInterceptor
from sidecar.interceptors.auth import AuthInterceptor
from sidecar.interceptors.errors import ErrorInterceptor
from sidecar.interceptors.limits import LimitsInterceptor
from sidecar.memory import settle
from sidecar.reflection import SERVICE_NAME as REFLECTION_SERVICE
from sidecar.reflection import LazyReflection
from sidecar.services import register_all
from sidecar.tls import server_credentials

log = structlog.get_logger()

SHUTDOWN_GRACE_S = 5.0
#: Threads beyond max_concurrent_rpcs: health and the refusals of excess calls.
SPARE_THREADS = 8
_PR_SET_DUMPABLE = 4


def make_undumpable() -> bool:
    """``prctl(PR_SET_DUMPABLE, 0)``: other processes of our UID (the app!) can no
    longer ptrace us or read /proc/PID/{environ,mem,fd...}; no core dumps.

    Returns:
        whether the call succeeded.
    """
    # CDLL(None): the symbols already linked into python (libc's prctl); unlike
    # ctypes.util.find_library it runs no ldconfig subprocess.
    libc = ctypes.CDLL(None, use_errno=True)
    return int(libc.prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0)) == 0


def server_options(config: Config) -> list[tuple[str, Any]]:
    """Message size, keepalive and ping policy for both servers."""
    return [
        ("grpc.max_send_message_length", config.max_message_bytes),
        ("grpc.max_receive_message_length", config.max_message_bytes),
        ("grpc.so_reuseport", 0),
        ("grpc.keepalive_time_ms", int(config.keepalive_time_s * 1000)),
        ("grpc.keepalive_timeout_ms", int(config.keepalive_timeout_s * 1000)),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.max_pings_without_data", 0),
        (
            "grpc.http2.min_ping_interval_without_data_ms",
            int(config.min_client_ping_interval_s * 1000),
        ),
        (
            "grpc.http2.min_recv_ping_interval_without_data_ms",
            int(config.min_client_ping_interval_s * 1000),
        ),
        ("grpc.http2.max_ping_strikes", 2),
    ]


class Sidecar:
    """A running server and what it owns (health, deps, the health-only server)."""

    def __init__(
        self,
        server: grpc.Server,
        port: int,
        health: health.HealthServicer,
        deps: Deps,
        *,
        health_server: grpc.Server | None = None,
        health_port: int = 0,
        closers: tuple[Any, ...] = (),
    ):
        self.server = server
        self.port = port
        self.health = health
        self.deps = deps
        self.health_server = health_server
        self.health_port = health_port
        self._closers = closers

    def start(self) -> None:
        """Start serving (the health-only port first, so probes answer at once)."""
        if self.health_server is not None:
            self.health_server.start()
        self.server.start()

    def stop(self, grace: float | None = SHUTDOWN_GRACE_S) -> None:
        """Turn health NOT_SERVING, end streams within ``grace``, stop parts."""
        self.deps.stopping.set()
        self.health.enter_graceful_shutdown()
        self.server.stop(grace).wait()
        if self.health_server is not None:
            self.health_server.stop(0).wait()
        for c in self._closers:
            c.close()
        self.deps.close()


def _bind(server: grpc.Server, address: str, creds: grpc.ServerCredentials | None) -> int:
    try:
        port = (
            server.add_secure_port(address, creds)
            if creds is not None
            else server.add_insecure_port(address)
        )
    except RuntimeError as e:
        raise RuntimeError(f"cannot listen on {address}: {e}") from None
    if port == 0 and not address.startswith("unix"):
        raise RuntimeError(f"cannot listen on {address} (address in use or not local?)")
    return port


def build(address: str, config: Config | None = None, deps: Deps | None = None) -> Sidecar:
    """Create (not start) the sidecar server bound to ``address``.

    Raises:
        ConfigError: the config is unsafe or incomplete (no auth, plaintext on a
            non-loopback address, unreadable token/TLS files).
        RuntimeError: the address cannot be bound or the audit sink cannot be opened.
    """
    config = config or Config()
    if address != config.listen:
        config = config.replace(listen=address)
    validate(config)
    hashes = token_hashes(config)
    creds = server_credentials(config)
    try:
        sink = AuditSink(config.audit_file)
    except AuditSinkError as e:
        raise RuntimeError(str(e)) from None
    deps = deps or Deps.from_config(config)
    limits = LimitsInterceptor(
        config.max_concurrent_rpcs,
        config.default_deadline_s,
        config.max_stream_age_s,
        deps.stopping,
    )
    interceptors: list[InterceptorBase] = [
        AuditInterceptor(sink, audit_health=config.audit_health),
        AuthInterceptor(
            hashes, cert_ok=config.require_client_auth, enabled=not config.insecure_no_auth
        ),
        limits,
        ErrorInterceptor(),
    ]
    server = grpc.server(
        futures.ThreadPoolExecutor(
            max_workers=config.max_concurrent_rpcs + SPARE_THREADS, thread_name_prefix="rpc"
        ),
        interceptors=interceptors,
        options=server_options(config),
        # A backstop only: our limits interceptor refuses first, with a clear message.
        maximum_concurrent_rpcs=config.max_concurrent_rpcs + SPARE_THREADS,
    )
    names = register_all(server, deps)
    health_servicer = health.HealthServicer(experimental_non_blocking=True)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    for name in ["", *names]:
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)

    def audit_failed(err: AuditSinkError) -> None:
        # Fail closed means every call is refused from now on: say so on health too,
        # so the kubelet restarts the container instead of keeping a mute sidecar.
        log.error("audit sink failed; health is now NOT_SERVING", error=str(err))
        for name in ["", *names]:
            health_servicer.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)

    sink.on_failure = audit_failed
    if config.reflection:
        # Served from the start; grpc_reflection itself is imported on the first call.
        server.add_generic_rpc_handlers(
            (LazyReflection([*names, health.SERVICE_NAME, REFLECTION_SERVICE]),)
        )
    port = _bind(server, address, creds)
    health_server, health_port = None, 0
    if config.health_listen:
        # Plaintext on purpose: kubelet probes carry no credentials. It serves health only.
        health_server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="health"),
            options=server_options(config),
            maximum_concurrent_rpcs=16,
        )
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, health_server)
        health_port = _bind(health_server, config.health_listen, None)
    return Sidecar(
        server,
        port,
        health_servicer,
        deps,
        health_server=health_server,
        health_port=health_port,
        closers=(limits, sink),
    )


def create_server(
    address: str = "127.0.0.1:0", config: Config | None = None, deps: Deps | None = None
) -> tuple[grpc.Server, int]:
    """Create and start a server; return it and the bound port (tests bind port 0)."""
    sc = build(address, config, deps)
    sc.start()
    return sc.server, sc.port


def serve(config: Config) -> int:
    """Run until SIGTERM/SIGINT, then shut down gracefully. Returns an exit code.

    Raises:
        ConfigError: the config is unsafe or incomplete.
        RuntimeError: cannot listen.
    """
    if not make_undumpable():
        raise RuntimeError("prctl(PR_SET_DUMPABLE, 0) failed; refusing to run dumpable")
    sc = build(config.listen, config)
    shutdown = threading.Thread(target=sc.stop, name="shutdown", daemon=True)
    requested = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        if requested.is_set():
            return
        requested.set()
        log.info("shutting down", signal=signal.Signals(signum).name)
        shutdown.start()

    # Installed before the 'listening on' line: whoever waits for it may signal at once.
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    sc.start()
    host = config.listen.rsplit(":", 1)[0]
    log.info(
        "listening",
        address=f"{host}:{sc.port}",
        health_port=sc.health_port or None,
        tls=bool(config.tls_cert),
        loopback=is_loopback(config.listen),
        config=config.redacted(),
    )
    if config.insecure_no_auth:
        log.warning("serving WITHOUT authentication (insecure_no_auth=true); loopback only")
    print(f"listening on {host}:{sc.port}", flush=True)  # the demo and tests wait for this line
    if sc.health_port:
        print(f"health on {listen_host_of(config.health_listen)}:{sc.health_port}", flush=True)
    settle()  # start-up garbage and heap holes go back before we idle
    sc.server.wait_for_termination()
    if shutdown.is_alive():
        shutdown.join()  # parts (recorder, audit sink) close before we exit
    log.info("stopped")
    return 0


def listen_host_of(address: str) -> str:
    """``host`` of ``host:port`` as printed in the start-up lines."""
    return address.rsplit(":", 1)[0]


__all__ = ["ConfigError", "Sidecar", "build", "create_server", "make_undumpable", "serve"]
