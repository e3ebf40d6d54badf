"""The gRPC client: one channel, every stub, auth metadata, readable errors."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import grpc

from protos import (
    events_pb2_grpc,
    files_pb2_grpc,
    info_pb2,
    info_pb2_grpc,
    logs_pb2_grpc,
    network_pb2_grpc,
    processes_pb2_grpc,
)
from tui import API_MAJOR
from tui.address import format_address, parse_address

CONNECT_TIMEOUT_S = 5.0


class ConnectError(Exception):
    """The sidecar cannot be reached or is incompatible; the message says why."""


@dataclass(frozen=True)
class Target:
    """Where a sidecar is and how to authenticate.

    Attributes:
        address: ``host:port``.
        token: the raw bearer token (the sidecar only knows its SHA-256).
        tls_ca: PEM file of the CA that signed the sidecar's certificate; set
            (or ``tls``) to connect with TLS.
        tls_cert: PEM client certificate, for sidecars that require mTLS.
        tls_key: PEM private key of ``tls_cert``.
        tls_server_name: name to verify the server certificate against when it
            differs from the address host (e.g. through a port-forward).
        tls: use TLS with the system's CA bundle when no ``tls_ca`` is given.
    """

    address: str
    token: str = ""
    tls_ca: str = ""
    tls_cert: str = ""
    tls_key: str = ""
    tls_server_name: str = ""
    tls: bool = False

    @property
    def secure(self) -> bool:
        """Whether the channel uses TLS."""
        return bool(self.tls or self.tls_ca or self.tls_cert)

    @classmethod
    def from_env(cls, address: str | None, token: str | None = None) -> Target:
        """From arguments, falling back to ``BORESCOPE_ADDR``/``_TOKEN``/``_TLS_*``."""
        env = os.environ
        host, port = parse_address(address or env.get("BORESCOPE_ADDR", ""))
        return cls(
            format_address(host, port),
            token or env.get("BORESCOPE_TOKEN", ""),
            tls_ca=env.get("BORESCOPE_TLS_CA", ""),
            tls_cert=env.get("BORESCOPE_TLS_CERT", ""),
            tls_key=env.get("BORESCOPE_TLS_KEY", ""),
            tls_server_name=env.get("BORESCOPE_TLS_SERVER_NAME", ""),
        )


def _read_pem(what: str, path: str) -> bytes | None:
    if not path:
        return None
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise ConnectError(f"cannot read the {what} {path}: {e.strerror}") from None


def channel_for(target: Target, options: list[tuple[str, Any]]) -> grpc.Channel:
    """A plaintext or TLS channel to ``target``.

    Raises:
        ConnectError: a TLS file cannot be read.
    """
    if not target.secure:
        return grpc.insecure_channel(target.address, options=options)
    creds = grpc.ssl_channel_credentials(
        root_certificates=_read_pem("TLS CA", target.tls_ca),
        private_key=_read_pem("TLS client key", target.tls_key),
        certificate_chain=_read_pem("TLS client certificate", target.tls_cert),
    )
    if target.tls_server_name:
        options = [*options, ("grpc.ssl_target_name_override", target.tls_server_name)]
    return grpc.secure_channel(target.address, creds, options=options)


def describe_rpc_error(err: grpc.RpcError) -> str:
    """One line for a person: the status name and the server's message."""
    code = err.code() if hasattr(err, "code") else None
    details = err.details() if hasattr(err, "details") else str(err)
    name = code.name if code is not None else "ERROR"
    if code == grpc.StatusCode.UNAVAILABLE:
        return f"sidecar unavailable: {details}"
    if code == grpc.StatusCode.UNAUTHENTICATED:
        return (
            f"not authenticated: {details} (pass --token or set BORESCOPE_TOKEN to the "
            "sidecar's token)"
        )
    return f"{name}: {details}"


class Client:
    """Stubs for every borescope service over one channel.

    Args:
        target: address and token.
        options: extra channel options.
    """

    def __init__(self, target: Target, options: list[tuple[str, Any]] | None = None) -> None:
        self.target = target
        opts = [
            ("grpc.max_receive_message_length", 64 << 20),
            ("grpc.enable_retries", 0),
            ("grpc.keepalive_time_ms", 30_000),
            *(options or []),
        ]
        self.channel = channel_for(target, opts)
        self.info = info_pb2_grpc.InfoStub(self.channel)
        self.processes = processes_pb2_grpc.ProcessesStub(self.channel)
        self.files = files_pb2_grpc.FilesStub(self.channel)
        self.network = network_pb2_grpc.NetworkStub(self.channel)
        self.logs = logs_pb2_grpc.LogsStub(self.channel)
        self.events = events_pb2_grpc.EventsStub(self.channel)

    @property
    def metadata(self) -> tuple[tuple[str, str], ...]:
        """Call metadata: the bearer token when there is one."""
        return (("authorization", f"Bearer {self.target.token}"),) if self.target.token else ()

    def wait_ready(self, timeout: float = CONNECT_TIMEOUT_S) -> None:
        """Block until the channel connects.

        Raises:
            ConnectError: not reachable within ``timeout``.
        """
        try:
            grpc.channel_ready_future(self.channel).result(timeout=timeout)
        except grpc.FutureTimeoutError:
            raise ConnectError(
                f"cannot reach the sidecar at {self.target.address} within {timeout:g}s "
                "(is it running, and is the port-forward up?)"
            ) from None

    def handshake(self, timeout: float = CONNECT_TIMEOUT_S) -> info_pb2.GetInfoResponse:
        """Connect, fetch Info and check the contract version.

        Raises:
            ConnectError: unreachable, refused, or an incompatible major version.
        """
        self.wait_ready(timeout)
        try:
            info: info_pb2.GetInfoResponse = self.info.GetInfo(
                info_pb2.GetInfoRequest(), timeout=timeout, metadata=self.metadata
            )
        except grpc.RpcError as e:
            raise ConnectError(describe_rpc_error(e)) from None
        major = info.api_version.split(".", 1)[0]
        if major != str(API_MAJOR):
            raise ConnectError(
                f"sidecar at {self.target.address} speaks API {info.api_version}, this client "
                f"speaks {API_MAJOR}.x: upgrade the older of the two"
            )
        return info

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
