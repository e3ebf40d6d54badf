"""The sidecar's one typed config.

Sources, lowest precedence first: defaults, a TOML/JSON file, ``BORESCOPE_*``
environment variables, command-line flags. ``Config.redacted()`` is what the
sidecar logs at start-up.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

DEFAULT_SECRET_PATTERNS = (
    "*PASSWORD*",
    "*PASSWD*",
    "*SECRET*",
    "*TOKEN*",
    "*KEY*",
    "*CREDENTIAL*",
    "*PRIVATE*",
    "*AUTH*",
    "*CERT*",
    "*SESSION*",
    "*COOKIE*",
    "*DSN*",
    "*DATABASE_URL*",
)
DEFAULT_SIGNALS = ("SIGTERM", "SIGKILL", "SIGQUIT", "SIGHUP", "SIGUSR1", "SIGUSR2")
_SECRET_FIELDS = frozenset({"token_sha256"})  # a hash, but it names the token


class ConfigError(ValueError):
    """The config is invalid; the message names the key and what is wrong."""


@dataclass(frozen=True)
class Config:
    """Everything the sidecar can be told. Read-only by default."""

    listen: str = "127.0.0.1:7777"
    """gRPC address. Anything but loopback needs TLS or a token."""
    health_listen: str = ""
    """Plaintext grpc.health.v1-only address for Kubernetes probes ("" = off)."""
    token_sha256: str = ""
    """Hex SHA-256 of the bearer token; several comma-separated for rotation."""
    token_sha256_file: str = ""
    """File holding token hash(es), one per line (a mounted Secret)."""
    insecure_no_auth: bool = False
    """Serve without any authentication (loopback only; the app shares the netns!)."""
    tls_cert: str = ""
    """PEM server certificate (chain); with tls_key turns TLS on."""
    tls_key: str = ""
    """PEM private key of tls_cert."""
    tls_client_ca: str = ""
    """PEM CA bundle that client certificates must chain to (mTLS)."""
    require_client_auth: bool = False
    """mTLS: refuse clients without a certificate signed by tls_client_ca."""
    audit_file: str = ""
    """Where audit records go ("" = stdout, with the sidecar's logs)."""
    audit_health: bool = False
    """Audit grpc.health.v1 checks too (off: they carry no identity and no data)."""
    allow_signals: bool = False
    """Permit SignalProcess."""
    allowed_signals: tuple[str, ...] = DEFAULT_SIGNALS
    allow_probes: bool = False
    """Permit DNS/TCP/HTTP probes from the pod's network namespace."""
    reveal_secrets: bool = False
    """Show environment values whose names look secret."""
    secret_patterns: tuple[str, ...] = DEFAULT_SECRET_PATTERNS
    allow_sensitive_paths: bool = False
    """Permit reads under service-account token and Secret mounts."""
    allow_proc_sys: bool = False
    """Permit reads under the target's /proc and /sys."""
    reflection: bool = False
    """Serve gRPC reflection."""
    max_concurrent_rpcs: int = 64
    """Calls in flight at once (health excluded); beyond it RESOURCE_EXHAUSTED."""
    max_message_bytes: int = 8 << 20
    """Largest request or response message."""
    max_read_bytes: int = 4 << 20
    max_stream_age_s: float = 3600.0
    """Streams end (UNAVAILABLE + resume cursor in trailers) after this long."""
    default_deadline_s: float = 300.0
    """Unary calls without a deadline are cut off after this."""
    keepalive_time_s: float = 60.0
    """Server keepalive ping interval on idle connections."""
    keepalive_timeout_s: float = 20.0
    """Drop a connection whose keepalive ping is not answered within this."""
    min_client_ping_interval_s: float = 10.0
    """Clients pinging more often than this are sent GOAWAY (too_many_pings)."""
    probe_concurrency: int = 4
    recorder_interval_s: float = 2.0
    recorder_ring_size: int = 10_000
    log_line_cap: int = 16_384
    log_sources: tuple[str, ...] = ()
    """Extra log files (paths inside the primary app container)."""
    stdio_logs: tuple[str, ...] = ()
    """CRI-format stdout/stderr capture files, as seen by the sidecar."""
    container_names: Mapping[str, str] = field(default_factory=dict)
    local_root: int = 0
    """Local mode: the pid whose process tree is the app (0 = off)."""
    pod_name: str = ""
    namespace: str = ""
    node_name: str = ""
    proc_root: str = "/proc"

    def redacted(self) -> dict[str, Any]:
        """The config as a dict with secrets replaced, for the start-up log."""
        out = dataclasses.asdict(self)
        for k in _SECRET_FIELDS:
            if out.get(k):
                out[k] = "<redacted>"
        return out

    def replace(self, **changes: Any) -> Config:
        """A copy with some keys changed (validated like any other source)."""
        return from_mapping(changes, base=self)


def _coerce(name: str, kind: Any, value: Any) -> Any:
    kind_s = str(kind)
    try:
        if kind_s in ("bool", "<class 'bool'>"):
            if isinstance(value, str):
                v = value.strip().lower()
                if v in ("1", "true", "yes", "on"):
                    return True
                if v in ("0", "false", "no", "off", ""):
                    return False
                raise ValueError(f"not a boolean: {value!r}")
            return bool(value)
        if kind_s in ("int", "<class 'int'>"):
            return int(value)
        if kind_s in ("float", "<class 'float'>"):
            return float(value)
        if kind_s.startswith("tuple"):
            if isinstance(value, str):
                return tuple(v.strip() for v in value.split(",") if v.strip())
            return tuple(str(v) for v in value)
        if kind_s.startswith("Mapping"):
            if isinstance(value, str):
                value = dict(kv.split("=", 1) for kv in value.split(",") if "=" in kv)
            return {str(k): str(v) for k, v in dict(value).items()}
        return str(value)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"config key {name!r}: {e}") from None


def from_mapping(values: Mapping[str, Any], base: Config | None = None) -> Config:
    """Build a Config from a mapping of key -> value (strings are parsed).

    Raises:
        ConfigError: an unknown key or a value of the wrong type.
    """
    known = {f.name: f.type for f in fields(Config)}
    changes: dict[str, Any] = {}
    for k, v in values.items():
        key = k.replace("-", "_")
        if key not in known:
            raise ConfigError(f"unknown config key {k!r}; known keys: {', '.join(sorted(known))}")
        changes[key] = _coerce(key, known[key], v)
    return dataclasses.replace(base or Config(), **changes)


def from_env(environ: Mapping[str, str] | None = None, base: Config | None = None) -> Config:
    """Apply ``BORESCOPE_<KEY>`` environment variables."""
    env = os.environ if environ is None else environ
    known = {f.name for f in fields(Config)}
    values = {
        k[len("BORESCOPE_") :].lower(): v
        for k, v in env.items()
        if k.startswith("BORESCOPE_") and k[len("BORESCOPE_") :].lower() in known
    }
    return from_mapping(values, base)


def from_file(path: str, base: Config | None = None) -> Config:
    """Apply a TOML (``.toml``) or JSON file."""
    import tomllib  # lazy: only a config file needs it, not every sidecar start

    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise ConfigError(f"cannot read config file {path}: {e.strerror}") from None
    try:
        data = tomllib.loads(raw.decode()) if path.endswith(".toml") else json.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
        raise ConfigError(f"config file {path} is not valid: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path}: expected a table/object at the top")
    return from_mapping(data, base)


_LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost", "ip6-localhost"})


def listen_host(address: str) -> str:
    """The host part of a ``host:port`` / ``[v6]:port`` / ``unix:`` address."""
    if address.startswith(("unix:", "unix-abstract:")):
        return address
    host = address.rsplit(":", 1)[0] if ":" in address else address
    return host.strip("[]")


def is_loopback(address: str) -> bool:
    """Whether ``address`` is reachable only from inside the pod (loopback or a unix socket)."""
    host = listen_host(address)
    if host.startswith(("unix:", "unix-abstract:")):
        return True
    return host in _LOOPBACK_HOSTS or host.startswith("127.")


def token_hashes(config: Config) -> tuple[str, ...]:
    """Every accepted token hash (lower-case hex), from ``token_sha256`` and its file.

    Raises:
        ConfigError: the file cannot be read or a value is not a hex SHA-256.
    """
    raw = [v for v in config.token_sha256.split(",")]
    if config.token_sha256_file:
        try:
            with open(config.token_sha256_file, encoding="ascii") as f:
                raw += f.read().splitlines()
        except (OSError, UnicodeDecodeError) as e:
            raise ConfigError(
                f"cannot read token_sha256_file {config.token_sha256_file}: {e}"
            ) from None
    out: list[str] = []
    for value in (v.strip().lower() for v in raw):
        if not value or value.startswith("#"):
            continue
        if len(value) != 64 or any(c not in "0123456789abcdef" for c in value):
            raise ConfigError(
                "token_sha256 must be the 64-hex-digit SHA-256 of the token, not the token "
                "itself (make one with: python -m sidecar token)"
            )
        out.append(value)
    return tuple(out)


def validate(config: Config) -> None:
    """Refuse configs that would be unsafe or cannot work; the message says what to set.

    Raises:
        ConfigError: the first problem found.
    """
    tls = bool(config.tls_cert or config.tls_key)
    if tls and not (config.tls_cert and config.tls_key):
        raise ConfigError("TLS needs both tls_cert and tls_key")
    if config.require_client_auth and not (tls and config.tls_client_ca):
        raise ConfigError("require_client_auth needs tls_cert, tls_key and tls_client_ca")
    mtls = config.require_client_auth
    has_token = bool(token_hashes(config))
    loopback = is_loopback(config.listen)
    if config.insecure_no_auth and not loopback:
        raise ConfigError(
            f"insecure_no_auth is refused for the non-loopback address {config.listen}: "
            "set token_sha256(_file) or require_client_auth"
        )
    if not (has_token or mtls or config.insecure_no_auth):
        raise ConfigError(
            "no authentication configured: set token_sha256 or token_sha256_file "
            "(env BORESCOPE_TOKEN_SHA256; make one with `python -m sidecar token`), or "
            "require_client_auth with TLS. The app shares the pod's network namespace, so "
            "loopback alone is not a boundary; for a throwaway local run only, "
            "--set insecure_no_auth=true"
        )
    if not loopback and not tls:
        raise ConfigError(
            f"refusing to listen on the non-loopback address {config.listen} without TLS: "
            "set tls_cert and tls_key (the bearer token would cross the network in clear), "
            "or listen on 127.0.0.1 and use port-forward"
        )
    positive = (
        "max_concurrent_rpcs",
        "max_message_bytes",
        "max_stream_age_s",
        "default_deadline_s",
        "keepalive_time_s",
        "keepalive_timeout_s",
    )
    for key in positive:
        if getattr(config, key) <= 0:
            raise ConfigError(f"config key {key!r} must be > 0, got {getattr(config, key)}")
