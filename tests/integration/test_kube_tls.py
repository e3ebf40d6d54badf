"""Against an HTTPS API server (as every real one is): REST and the port-forward
websocket both verify the cluster CA from the kubeconfig; a wrong CA is one clear error."""

from __future__ import annotations

import base64
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from sidecar.config import Config
from tests.conftest import Running, start_sidecar
from tests.integration.fake_apiserver import FakeApiServer, make_pod
from tui.cli.main import main as cli_main
from tui.kube.connect import KubeOptions, open_client


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def make_ca_and_server_cert(d: Path, name: str) -> tuple[str, str, str]:
    """A CA and a server cert for 127.0.0.1 signed by it: (cert, key, ca)."""
    ca_key, ca, key, csr, cert = (
        d / f"{name}-{x}" for x in ("ca.key", "ca.crt", "tls.key", "tls.csr", "tls.crt")
    )
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", f"/CN={name}-ca",
             "-keyout", str(ca_key), "-out", str(ca))  # fmt: skip
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=kube-apiserver",
             "-keyout", str(key), "-out", str(csr))  # fmt: skip
    ext = d / f"{name}-ext.cnf"
    ext.write_text("subjectAltName=IP:127.0.0.1,DNS:kubernetes.default.svc\n")
    _openssl("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key), "-CAcreateserial",
             "-days", "1", "-extfile", str(ext), "-out", str(cert))  # fmt: skip
    return str(cert), str(key), str(ca)


@pytest.fixture
def tls_api(tmp_path: Path) -> Iterator[FakeApiServer]:
    srv = FakeApiServer(tls=make_ca_and_server_cert(tmp_path, "cluster")).start()
    yield srv
    srv.stop()


@pytest.fixture
def sidecar() -> Iterator[Running]:
    r = start_sidecar(Config())
    yield r
    r.client.close()
    r.sidecar.stop(0)


def test_portforward_over_https_with_the_cluster_ca(
    tls_api: FakeApiServer, sidecar: Running, tmp_path: Path
) -> None:
    """With certificate-authority-data in the kubeconfig, get pods (REST) and the wss://
    port-forward both succeed and a real gRPC call reaches the sidecar."""
    tls_api.state.add_pod(
        make_pod(
            "web-0",
            "shop",
            containers=[{"name": "app", "image": "a"}, {"name": "borescope", "image": "b"}],
        ),
        address=sidecar.address,
    )
    kc = tls_api.kubeconfig(str(tmp_path / "kc"), namespace="shop")
    client = open_client("pod/web-0", KubeOptions(kubeconfig=kc), token=sidecar.token)
    try:
        assert client.handshake(timeout=10).api_version
    finally:
        client.close()
    assert tls_api.url.startswith("https://")


def test_wrong_cluster_ca_is_one_clear_line(
    tls_api: FakeApiServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A kubeconfig trusting another CA fails verification: one line, exit 2, no traceback."""
    kc = tls_api.kubeconfig(str(tmp_path / "kc"), namespace="shop")
    _, _, other_ca = make_ca_and_server_cert(tmp_path, "other")
    text = (
        Path(kc)
        .read_text()
        .replace(
            base64.b64encode(Path(tls_api.ca_file).read_bytes()).decode(),
            base64.b64encode(Path(other_ca).read_bytes()).decode(),
        )
    )
    Path(kc).write_text(text)
    rc = cli_main(["info", "--target", "pod/web-0", "--kubeconfig", kc])
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err and err.count("\n") == 1
    assert "cannot reach the Kubernetes API at https://127.0.0.1" in err
    assert "CERTIFICATE_VERIFY_FAILED" in err and "certificate-authority does not match" in err
