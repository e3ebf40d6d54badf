"""Server TLS / mTLS credentials from the config's PEM files."""

from __future__ import annotations

import grpc

from sidecar.config import Config, ConfigError


def _read(key: str, path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise ConfigError(f"cannot read {key} {path}: {e.strerror}") from None


def server_credentials(config: Config) -> grpc.ServerCredentials | None:
    """TLS credentials when ``tls_cert``/``tls_key`` are set, else None (plaintext).

    With ``tls_client_ca`` the server asks for client certificates and verifies
    them against it; ``require_client_auth`` makes one mandatory (mTLS).

    Raises:
        ConfigError: a file cannot be read.
    """
    if not (config.tls_cert and config.tls_key):
        return None
    cert = _read("tls_cert", config.tls_cert)
    key = _read("tls_key", config.tls_key)
    ca = _read("tls_client_ca", config.tls_client_ca) if config.tls_client_ca else None
    return grpc.ssl_server_credentials(
        [(key, cert)],
        root_certificates=ca,
        require_client_auth=config.require_client_auth,
    )
