"""Keep one sidecar connection alive: handshake, latency pings, reconnect with backoff.

A :class:`Connection` runs one daemon thread per target. While connected it
sends a ``grpc.health.v1`` check every ``ping_interval`` seconds (cheap, no
/proc scan) and reports the round trip. When a ping fails it reports
"reconnecting" at once, then retries the handshake (``Info.GetInfo`` plus
the contract version check) with exponential backoff and jitter until the
sidecar answers or the connection is stopped. Every change goes to the
``on_change`` callback as a :class:`Status` (the app turns it into a
``tui.messages.ConnectionChanged``).

Nothing here touches Textual, so it is unit-tested over real channels.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from protos import info_pb2
from tui import API_MAJOR
from tui.client import Client, ConnectError, describe_rpc_error
from tui.messages import CLOSED, CONNECTED, CONNECTING, INCOMPATIBLE, RECONNECTING

#: gRPC's own reconnect backoff defaults to 1 s .. 120 s; after a sidecar
#: restart that could leave the channel idle for minutes although our loop
#: retries every few seconds. Cap it so a retry really dials.
CHANNEL_OPTIONS: list[tuple[str, int]] = [
    ("grpc.initial_reconnect_backoff_ms", 250),
    ("grpc.min_reconnect_backoff_ms", 250),
    ("grpc.max_reconnect_backoff_ms", 4000),
]


class IncompatibleSidecar(Exception):
    """The sidecar speaks another contract major version."""


def check_version(info: info_pb2.GetInfoResponse, address: str) -> None:
    """Refuse a sidecar whose contract major differs from ours.

    Raises:
        IncompatibleSidecar: with a message saying which side to upgrade.
    """
    major = info.api_version.split(".", 1)[0]
    if major != str(API_MAJOR):
        older = "this client" if major.isdigit() and int(major) > API_MAJOR else "the sidecar"
        raise IncompatibleSidecar(
            f"sidecar at {address} speaks API {info.api_version or '?'}, this client speaks "
            f"{API_MAJOR}.x: upgrade {older} (borescope {info.sidecar_version or '?'} in the pod)"
        )


def first_contact(client: Client, timeout: float) -> info_pb2.GetInfoResponse:
    """Handshake for a new target: GetInfo and the version check, failing fast.

    No ``wait_ready``: a refused port fails at once instead of after
    ``timeout`` (a silent host still takes ``timeout``).

    Raises:
        ConnectError: unreachable, refused, or unauthenticated, in one line.
        IncompatibleSidecar: another contract major version.
    """
    try:
        info: info_pb2.GetInfoResponse = client.info.GetInfo(
            info_pb2.GetInfoRequest(), timeout=timeout, metadata=client.metadata
        )
    except grpc.RpcError as e:
        if e.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
            raise ConnectError(
                f"cannot reach the sidecar at {client.target.address} "
                f"({e.code().name.lower()}: {e.details()}); is it running, and is the "
                "port-forward up?"
            ) from None
        raise ConnectError(f"sidecar at {client.target.address}: {describe_rpc_error(e)}") from None
    check_version(info, client.target.address)
    return info


@dataclass
class Backoff:
    """Exponential backoff with full jitter, capped.

    Args:
        initial: first delay in seconds.
        maximum: cap in seconds.
        factor: growth per attempt.
        rng: source of jitter (tests pass a seeded one).
    """

    initial: float = 0.5
    maximum: float = 10.0
    factor: float = 2.0
    rng: random.Random = field(default_factory=random.Random)
    attempt: int = 0

    def next(self) -> float:
        """The delay before the next attempt (grows, then stays near the cap)."""
        ceiling = min(self.maximum, self.initial * self.factor**self.attempt)
        self.attempt += 1
        # Half fixed, half jitter: never 0 (no hot loop), spread across clients.
        return ceiling / 2 + self.rng.uniform(0, ceiling / 2)

    def reset(self) -> None:
        self.attempt = 0


@dataclass(frozen=True)
class Status:
    """One observation of the connection.

    Attributes:
        state: connecting, connected, reconnecting, incompatible or closed.
        detail: the last error, for a person ("" when fine).
        latency_ms: last ping round trip (connected only).
        info: GetInfo from the last successful handshake.
        attempt: reconnect attempts since the loss (0 when connected).
        retry_in_s: seconds until the next attempt, when waiting.
        reconnected: True on the first "connected" after a loss.
    """

    state: str
    detail: str = ""
    latency_ms: float | None = None
    info: info_pb2.GetInfoResponse | None = None
    attempt: int = 0
    retry_in_s: float | None = None
    reconnected: bool = False


class Connection:
    """Watches one client's sidecar and reports its state.

    Args:
        client: the client whose channel to watch (not owned: the caller closes it).
        on_change: called from the watcher thread with every new :class:`Status`.
        ping_interval: seconds between latency pings while connected.
        timeout: per-call timeout of pings and handshakes.
        backoff: the reconnect schedule.
        clock: monotonic clock used for latency (tests freeze it).
    """

    def __init__(
        self,
        client: Client,
        on_change: Callable[[Status], None],
        *,
        ping_interval: float = 2.0,
        timeout: float = 3.0,
        backoff: Backoff | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.client = client
        self.on_change = on_change
        self.ping_interval = ping_interval
        self.timeout = timeout
        self.backoff = backoff or Backoff()
        self.clock = clock
        self._health = health_pb2_grpc.HealthStub(client.channel)
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._lost = False
        self.status = Status(CONNECTING)

    @property
    def address(self) -> str:
        return self.client.target.address

    def start(self, info: info_pb2.GetInfoResponse | None = None) -> None:
        """Start watching; ``info`` from a handshake already done skips the first one."""
        if info is not None:
            self._publish(Status(CONNECTED, info=info))
        self._thread = threading.Thread(
            target=self._run, args=(info is not None,), name="borescope-conn", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        """Stop the watcher (it does not close the client)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)
        self._publish(Status(CLOSED, info=self.status.info))

    def retry_now(self) -> None:
        """Skip the current wait: ping or reconnect immediately."""
        self._wake.set()

    def _publish(self, status: Status) -> None:
        self.status = status
        self.on_change(status)

    def _sleep(self, seconds: float) -> None:
        self._wake.wait(seconds)
        self._wake.clear()

    def handshake(self) -> info_pb2.GetInfoResponse:
        """GetInfo and the version check.

        Raises:
            grpc.RpcError: the sidecar did not answer.
            IncompatibleSidecar: another contract major version.
        """
        info: info_pb2.GetInfoResponse = self.client.info.GetInfo(
            info_pb2.GetInfoRequest(), timeout=self.timeout, metadata=self.client.metadata
        )
        check_version(info, self.address)
        return info

    def ping(self) -> float:
        """One health check; returns the round trip in milliseconds.

        Raises:
            grpc.RpcError: the sidecar did not answer in time.
        """
        t0 = self.clock()
        self._health.Check(health_pb2.HealthCheckRequest(), timeout=self.timeout)
        return (self.clock() - t0) * 1000.0

    def _run(self, connected: bool) -> None:
        while not self._stop.is_set():
            if connected:
                connected = self._ping_once()
                if connected:
                    self._sleep(self.ping_interval)
                continue
            connected = self._connect_once()
            if not connected and not self._stop.is_set():
                delay = self.backoff.next()
                self._publish(
                    Status(
                        self.status.state,
                        detail=self.status.detail,
                        info=self.status.info,
                        attempt=self.backoff.attempt,
                        retry_in_s=delay,
                    )
                )
                self._sleep(delay)

    def _ping_once(self) -> bool:
        try:
            latency = self.ping()
        except grpc.RpcError as e:
            if self._stop.is_set():
                return False
            self._lost = True
            self._publish(Status(RECONNECTING, detail=describe_rpc_error(e), info=self.status.info))
            return False
        if not self._stop.is_set():
            self._publish(Status(CONNECTED, latency_ms=latency, info=self.status.info))
        return True

    def _connect_once(self) -> bool:
        first = self.status.state == CONNECTING
        try:
            t0 = self.clock()
            info = self.handshake()
            latency = (self.clock() - t0) * 1000.0
        except IncompatibleSidecar as e:
            self._publish(Status(INCOMPATIBLE, detail=str(e), info=self.status.info))
            return False
        except grpc.RpcError as e:
            state = CONNECTING if first and not self._lost else RECONNECTING
            self._publish(Status(state, detail=describe_rpc_error(e), info=self.status.info))
            return False
        if self._stop.is_set():
            return False
        reconnected = self._lost
        self._lost = False
        self.backoff.reset()
        self._publish(Status(CONNECTED, latency_ms=latency, info=info, reconnected=reconnected))
        return True
