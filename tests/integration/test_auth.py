"""Authentication: deny by default over every method, tokens, mTLS, unsafe binds refused."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from google.protobuf import descriptor_pool
from grpc_health.v1 import health_pb2, health_pb2_grpc

import protos  # noqa: F401  (package import registers nothing by itself)
from protos import (
    events_pb2,
    files_pb2,
    info_pb2,
    logs_pb2,
    network_pb2,
    processes_pb2,
)
from sidecar.config import Config, ConfigError
from sidecar.server import build
from tests.conftest import ROOT, Running, new_token, start_sidecar
from tui.client import Client, Target

MODULES = (info_pb2, processes_pb2, files_pb2, network_pb2, logs_pb2, events_pb2)


def every_method() -> list[tuple[str, bool, bool]]:
    """(path, client_streaming, server_streaming) for every borescope.v1 and reflection method."""
    from grpc_reflection.v1alpha import reflection_pb2

    pool = descriptor_pool.Default()
    out = []
    files = [pool.FindFileByName(m.DESCRIPTOR.name) for m in MODULES]
    services = [svc for f in files for svc in f.services_by_name.values()]
    # Nothing served is missed: the walk covers every service the sidecar registers.
    import importlib

    from sidecar.services import MODULES as SERVICE_MODULES

    served = {
        n
        for mod in SERVICE_MODULES
        for n in importlib.import_module(f"sidecar.services.{mod}").SERVICE_NAMES
    }
    assert served <= {svc.full_name for svc in services}
    services.append(reflection_pb2.DESCRIPTOR.services_by_name["ServerReflection"])
    for svc in services:
        for m in svc.methods:
            out.append((f"/{svc.full_name}/{m.name}", m.client_streaming, m.server_streaming))
    return out


def call_raw(
    channel: grpc.Channel, path: str, cstream: bool, sstream: bool, md: tuple[tuple[str, str], ...]
) -> None:
    """Call ``path`` with an empty message in the right RPC kind and drain the answer."""
    if cstream and sstream:
        list(channel.stream_stream(path)(iter([b""]), metadata=md, timeout=5))
    elif cstream:
        channel.stream_unary(path)(iter([b""]), metadata=md, timeout=5)
    elif sstream:
        list(channel.unary_stream(path)(b"", metadata=md, timeout=5))
    else:
        channel.unary_unary(path)(b"", metadata=md, timeout=5)


@pytest.fixture
def open_sidecar() -> Iterator[Running]:
    """A sidecar with reflection on (so its methods are served too)."""
    r = start_sidecar(Config(reflection=True))
    yield r
    r.client.close()
    r.sidecar.stop(0)


def test_every_method_in_the_pool_denies_unauthenticated_calls(open_sidecar: Running) -> None:
    """Every borescope.v1 method and reflection, walked from the descriptor pool, answers
    UNAUTHENTICATED with no token and with a wrong token; so does an unknown method."""
    methods = every_method()
    assert len(methods) >= 15  # the walk really covers the contract
    assert any(p.endswith("ServerReflectionInfo") for p, _, _ in methods)
    ch = open_sidecar.client.channel
    wrong = (("authorization", "Bearer " + new_token()[0]),)
    for path, cs, ss in [*methods, ("/borescope.v1.Nope/Nothing", False, False)]:
        for md in ((), wrong):
            with pytest.raises(grpc.RpcError) as e:
                call_raw(ch, path, cs, ss, md)
            assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED, (path, md)


def test_the_right_token_reaches_every_service(open_sidecar: Running) -> None:
    """With the token no method is UNAUTHENTICATED (it may fail for other reasons)."""
    ch = open_sidecar.client.channel
    for path, cs, ss in every_method():
        try:
            call_raw(ch, path, cs, ss, open_sidecar.client.metadata)
        except grpc.RpcError as e:
            assert e.code() != grpc.StatusCode.UNAUTHENTICATED, path
    with pytest.raises(grpc.RpcError) as e:
        call_raw(ch, "/borescope.v1.Nope/Nothing", False, False, open_sidecar.client.metadata)
    assert e.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_health_is_open(open_sidecar: Running) -> None:
    """Health answers without credentials (kubelet probes carry none)."""
    stub = health_pb2_grpc.HealthStub(open_sidecar.client.channel)
    assert stub.Check(health_pb2.HealthCheckRequest(), timeout=5).status == 1


def test_rotation_accepts_every_configured_hash(tmp_path: Path) -> None:
    """A token hash file with two hashes (rotation) accepts both tokens, and the audit
    identity names which one."""
    (t1, h1), (t2, h2) = new_token(), new_token()
    f = tmp_path / "hashes"
    f.write_text(f"# rotation\n{h1}\n{h2}\n")
    r = start_sidecar(Config(token_sha256_file=str(f)), token=t1)
    try:
        r.client.handshake()
        with Client(Target(r.address, t2)) as c2:
            c2.handshake()
    finally:
        r.client.close()
        r.sidecar.stop(0)


def test_no_auth_configured_refuses_to_start() -> None:
    """Without a token hash, mTLS or the explicit insecure switch, build() refuses with a
    message naming the switches."""
    with pytest.raises(ConfigError, match="token_sha256"):
        build("127.0.0.1:0", Config())


def test_insecure_no_auth_only_on_loopback() -> None:
    """insecure_no_auth works on loopback and is refused on any other address."""
    sc = build("127.0.0.1:0", Config(insecure_no_auth=True))
    sc.start()
    try:
        with Client(Target(f"127.0.0.1:{sc.port}")) as c:
            c.handshake()
    finally:
        sc.stop(0)
    with pytest.raises(ConfigError, match="insecure_no_auth is refused"):
        build("0.0.0.0:0", Config(insecure_no_auth=True))


def test_non_loopback_without_tls_refuses_to_start() -> None:
    """A token alone does not allow a non-loopback plaintext listener."""
    _t, h = new_token()
    with pytest.raises(ConfigError, match="without TLS"):
        build("0.0.0.0:0", Config(token_sha256=h))


def test_plain_token_instead_of_hash_is_refused() -> None:
    """Configuring the raw token (not its hash) is refused with a hint."""
    with pytest.raises(ConfigError, match="64-hex-digit"):
        build("127.0.0.1:0", Config(token_sha256="hunter2"))


def test_serve_without_auth_exits_with_a_clear_message() -> None:
    """`python -m sidecar serve` with no auth exits 2 and explains what to set."""
    p = subprocess.run(
        [sys.executable, "-m", "sidecar", "serve", "--listen", "127.0.0.1:0"],
        cwd=ROOT,
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert p.returncode == 2
    assert "no authentication configured" in p.stderr
    assert "Traceback" not in p.stderr


def test_token_command_prints_a_matching_hash() -> None:
    """`python -m sidecar token` prints a token whose SHA-256 is the printed hash."""
    import hashlib

    p = subprocess.run(
        [sys.executable, "-m", "sidecar", "token"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    lines = dict(line.split(":", 1) for line in p.stdout.splitlines())
    assert hashlib.sha256(lines["token"].strip().encode()).hexdigest() == lines["sha256"].strip()


# --- mTLS ---------------------------------------------------------------------------


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CA, a server cert for localhost/127.0.0.1 and a client cert, made by openssl."""
    d = tmp_path_factory.mktemp("pki")
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=test-ca", cwd=d)  # fmt: skip
    for name, ext in (
        ("server", "subjectAltName=DNS:localhost,IP:127.0.0.1"),
        ("client", "extendedKeyUsage=clientAuth"),
    ):
        _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                 "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN=oncall-{name}", cwd=d)  # fmt: skip
        (d / f"{name}.ext").write_text(ext + "\n")
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                 "-CAcreateserial", "-out", f"{name}.pem", "-days", "2", "-extfile", f"{name}.ext", cwd=d)  # fmt: skip
    return d


def test_mtls_client_certificate_authenticates_and_is_the_identity(
    pki: Path, tmp_path: Path
) -> None:
    """With require_client_auth and no token, a client with a CA-signed certificate is
    served and audited by its subject; a client without one cannot connect."""
    import json

    audit_file = tmp_path / "audit.jsonl"
    cfg = Config(
        tls_cert=str(pki / "server.pem"),
        tls_key=str(pki / "server.key"),
        tls_client_ca=str(pki / "ca.pem"),
        require_client_auth=True,
        audit_file=str(audit_file),
        listen="0.0.0.0:0",
    )
    sc = build("0.0.0.0:0", cfg)  # non-loopback is fine with TLS + client certs
    sc.start()
    try:
        good = Target(
            f"localhost:{sc.port}",
            tls_ca=str(pki / "ca.pem"),
            tls_cert=str(pki / "client.pem"),
            tls_key=str(pki / "client.key"),
        )
        with Client(good) as c:
            c.handshake()
        rec = [json.loads(x) for x in audit_file.read_text().splitlines()][-1]
        assert "oncall-client" in rec["identity"]
        with Client(Target(f"localhost:{sc.port}", tls_ca=str(pki / "ca.pem"))) as bad:
            with pytest.raises(grpc.RpcError) as e:
                bad.info.GetInfo(info_pb2.GetInfoRequest(), timeout=5)
            assert e.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        sc.stop(0)


def test_tls_with_token_requires_the_token(pki: Path) -> None:
    """TLS (no client certs) plus a token: the token is still required on every call."""
    token, digest = new_token()
    cfg = Config(
        tls_cert=str(pki / "server.pem"), tls_key=str(pki / "server.key"), token_sha256=digest
    )
    sc = build("127.0.0.1:0", cfg)
    sc.start()
    try:
        with Client(Target(f"localhost:{sc.port}", token, tls_ca=str(pki / "ca.pem"))) as c:
            c.handshake()
            with pytest.raises(grpc.RpcError) as e:
                c.info.GetInfo(info_pb2.GetInfoRequest(), timeout=5)
            assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED
    finally:
        sc.stop(0)


def test_require_client_auth_without_ca_is_refused(pki: Path) -> None:
    """require_client_auth without tls_client_ca is a config error, not a silent downgrade."""
    with pytest.raises(ConfigError, match="tls_client_ca"):
        build(
            "127.0.0.1:0",
            Config(
                tls_cert=str(pki / "server.pem"),
                tls_key=str(pki / "server.key"),
                require_client_auth=True,
            ),
        )


def test_client_takes_token_and_tls_from_the_environment(
    pki: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """BORESCOPE_TOKEN and BORESCOPE_TLS_CA/_CERT/_KEY/_SERVER_NAME configure the client:
    it connects over TLS, verifies the server as `localhost` through a 127.0.0.1 address
    (as through a port-forward) and authenticates with the token."""
    token, digest = new_token()
    cfg = Config(
        tls_cert=str(pki / "server.pem"),
        tls_key=str(pki / "server.key"),
        tls_client_ca=str(pki / "ca.pem"),
        token_sha256=digest,
    )
    sc = build("127.0.0.1:0", cfg)
    sc.start()
    try:
        monkeypatch.setenv("BORESCOPE_TOKEN", token)
        monkeypatch.setenv("BORESCOPE_TLS_CA", str(pki / "ca.pem"))
        monkeypatch.setenv("BORESCOPE_TLS_CERT", str(pki / "client.pem"))
        monkeypatch.setenv("BORESCOPE_TLS_KEY", str(pki / "client.key"))
        monkeypatch.setenv("BORESCOPE_TLS_SERVER_NAME", "localhost")
        target = Target.from_env(f"127.0.0.1:{sc.port}")
        assert target.secure and target.token == token
        with Client(target) as c:
            c.handshake()
    finally:
        sc.stop(0)
