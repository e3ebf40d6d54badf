"""Port-forward and connect through the Kubernetes API, end to end.

The API server is the fake in fake_apiserver.py (the outer edge); the
kubernetes client, the websocket protocol, borescope's forwarder and the
sidecar are real: a real gRPC call crosses the v4.channel.k8s.io framing.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from protos import info_pb2
from sidecar.config import Config
from tests.conftest import Running, start_sidecar
from tests.integration.fake_apiserver import FakeApiServer, make_pod
from tui.cli.main import main as cli_main
from tui.client import ConnectError
from tui.kube import config as kube_config
from tui.kube.connect import KubeOptions, open_client
from tui.kube.errors import KubeError
from tui.kube.portforward import Forwarder
from tui.kube.targets import parse_target, resolve

SIDECAR = {"name": "borescope", "image": "borescope:test"}
INJECTED = {"borescope.io/status": "injected", "borescope.io/token-secret": "bs-token"}


@pytest.fixture
def api() -> Iterator[FakeApiServer]:
    srv = FakeApiServer().start()
    yield srv
    srv.stop()


@pytest.fixture
def sidecar() -> Iterator[Running]:
    r = start_sidecar(Config())
    yield r
    r.client.close()
    r.sidecar.stop(0)


@pytest.fixture
def kubeconfig(api: FakeApiServer, tmp_path: Path) -> str:
    return api.kubeconfig(str(tmp_path / "kubeconfig"), namespace="shop")


def _injected_pod(api: FakeApiServer, sidecar: Running, name: str = "web-0", **kw: object) -> None:
    api.state.add_pod(
        make_pod(
            name,
            "shop",
            labels={"app": "web", "borescope.io/inject": "true"},
            annotations=INJECTED,
            containers=[{"name": "app", "image": "app:1"}, dict(SIDECAR)],
            **kw,  # type: ignore[arg-type]
        ),
        address=sidecar.address,
    )
    api.state.secrets[("shop", "bs-token")] = {
        "kind": "Secret",
        "apiVersion": "v1",
        "metadata": {"name": "bs-token", "namespace": "shop"},
        "type": "Opaque",
        "data": {"token": base64.b64encode(sidecar.token.encode()).decode()},
    }


def test_grpc_call_crosses_portforward_websocket(
    api: FakeApiServer, sidecar: Running, kubeconfig: str
) -> None:
    """A real GetInfo reaches the sidecar through the v4.channel.k8s.io port-forward,
    with the token read from the Secret the pod's annotation names."""
    _injected_pod(api, sidecar)
    client = open_client("pod/web-0", KubeOptions(kubeconfig=kubeconfig))
    try:
        info = client.handshake(timeout=10)
        assert info.api_version.startswith("1.")
        # Several calls reuse the one HTTP/2 connection: one port-forward stream.
        for _ in range(3):
            client.info.GetInfo(info_pb2.GetInfoRequest(), timeout=5, metadata=client.metadata)
        assert client.forwarder.connections == 1
    finally:
        client.close()
    pf = api.state.seen("GET", "/pods/web-0/portforward")
    assert pf and pf[0]["query"]["ports"] == ["7777"]
    assert pf[0]["headers"]["upgrade"].lower() == "websocket"
    assert "v4.channel.k8s.io" in pf[0]["headers"]["sec-websocket-protocol"]
    assert api.state.seen("GET", "/secrets/bs-token")


def test_each_local_connection_gets_its_own_portforward(
    api: FakeApiServer, sidecar: Running, kubeconfig: str
) -> None:
    """Two gRPC channels through one listener open two port-forward websockets (as kubectl)."""
    _injected_pod(api, sidecar)
    cluster = kube_config.load(kubeconfig=kubeconfig)
    target = resolve(cluster, parse_target("pod/web-0"))
    with Forwarder(cluster, target) as fwd:
        channels = [
            grpc.insecure_channel(fwd.address, options=[("grpc.use_local_subchannel_pool", 1)])
            for _ in range(2)
        ]
        for ch in channels:
            grpc.channel_ready_future(ch).result(timeout=10)
        assert fwd.connections == 2
        for ch in channels:
            ch.close()
    assert len(api.state.seen("GET", "/portforward")) == 2


def test_reconnects_after_the_stream_drops(
    api: FakeApiServer, sidecar: Running, kubeconfig: str
) -> None:
    """When the API server cuts the port-forward, the next call opens a new one and succeeds."""
    _injected_pod(api, sidecar)
    client = open_client("pod/web-0", KubeOptions(kubeconfig=kubeconfig))
    try:
        client.handshake(timeout=10)
        api.stopping.set()  # the fake's bridges end: the websocket closes
        time.sleep(0.8)  # the bridge notices within its 0.5 s select
        api.stopping.clear()
        info = client.info.GetInfo(
            info_pb2.GetInfoRequest(), timeout=5, metadata=client.metadata, wait_for_ready=True
        )
        assert info.api_version
        assert client.forwarder.connections >= 2
    finally:
        client.close()


def test_refused_port_in_pod_is_reported(api: FakeApiServer, kubeconfig: str) -> None:
    """The kubelet's error-channel text (connection refused) becomes the connect error."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"127.0.0.1:{s.getsockname()[1]}"
    api.state.add_pod(
        make_pod("web-1", "shop", containers=[{"name": "app", "image": "a"}, dict(SIDECAR)]),
        address=dead,
    )
    client = open_client("pod/web-1", KubeOptions(kubeconfig=kubeconfig), token="x")
    try:
        with pytest.raises(
            ConnectError, match=r"port-forward to pod web-1 port 7777 failed: .*connection refused"
        ):
            client.wait_ready(timeout=1.5)
    finally:
        client.close()


def test_rbac_refusal_names_verb_and_resource(
    api: FakeApiServer, sidecar: Running, kubeconfig: str
) -> None:
    """A 403 on the websocket upgrade says 'needs create on pods/portforward in namespace shop'."""
    _injected_pod(api, sidecar)
    api.state.forbidden.add(("create", "pods/portforward"))
    client = open_client("pod/web-0", KubeOptions(kubeconfig=kubeconfig))
    try:
        with pytest.raises(
            ConnectError, match="needs create on pods/portforward in namespace shop"
        ):
            client.wait_ready(timeout=3)
    finally:
        client.close()


def test_pod_without_sidecar_is_refused_with_a_hint(api: FakeApiServer, kubeconfig: str) -> None:
    """Connecting to a pod with no sidecar says how to get one (label or attach)."""
    api.state.add_pod(make_pod("plain", "shop"))
    with pytest.raises(KubeError, match=r"no borescope sidecar.*borescope attach pod/plain"):
        open_client("pod/plain", KubeOptions(kubeconfig=kubeconfig))


def test_cli_info_over_portforward(
    api: FakeApiServer,
    sidecar: Running,
    kubeconfig: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`borescope info --target deploy/web -n shop` resolves the deployment's pod and prints its info."""
    _injected_pod(api, sidecar)
    api.state.deployments[("shop", "web")] = {
        "kind": "Deployment",
        "apiVersion": "apps/v1",
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": {}},
    }
    rc = cli_main(
        ["info", "--target", "deploy/web", "-n", "shop", "--kubeconfig", kubeconfig, "-o", "json"]
    )
    out = capsys.readouterr()
    assert rc == 0, out.err
    assert '"api_version"' in out.out
    assert api.state.seen("GET", "/pods")[0]["query"]["labelSelector"] == ["app=web"]


def test_cli_forbidden_prints_one_line(
    api: FakeApiServer, kubeconfig: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A 403 on get pods is one line naming the missing permission, exit 2, no traceback."""
    api.state.forbidden.add(("get", "pods"))
    rc = cli_main(["info", "--addr", "pod/web-0", "--kubeconfig", kubeconfig])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.count("\n") == 1
    assert "needs get on pods in namespace shop" in err
    assert "Traceback" not in err


def test_concurrent_streams_do_not_interfere(
    api: FakeApiServer, sidecar: Running, kubeconfig: str
) -> None:
    """Eight channels opened at once all connect (separate stream ApiClients, no shared-client race)."""
    _injected_pod(api, sidecar)
    cluster = kube_config.load(kubeconfig=kubeconfig)
    target = resolve(cluster, parse_target("pod/web-0"))
    errors: list[BaseException] = []
    with Forwarder(cluster, target) as fwd:

        def one() -> None:
            ch = grpc.insecure_channel(fwd.address, options=[("grpc.use_local_subchannel_pool", 1)])
            try:
                grpc.channel_ready_future(ch).result(timeout=15)
            except BaseException as e:  # collected and asserted below
                errors.append(e)
            finally:
                ch.close()

        threads = [threading.Thread(target=one) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors
        assert fwd.connections == 8


def test_deploy_target_follows_a_replaced_pod(
    api: FakeApiServer, sidecar: Running, kubeconfig: str
) -> None:
    """When the deployment's pod is replaced (rollout), the next connection gets a 404,
    re-resolves deploy/web to the new pod, and gRPC reconnects to it."""
    _injected_pod(api, sidecar, "web-old")
    api.state.deployments[("shop", "web")] = {
        "kind": "Deployment",
        "apiVersion": "apps/v1",
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": {}},
    }
    client = open_client("deploy/web", KubeOptions(kubeconfig=kubeconfig))
    try:
        client.handshake(timeout=10)
        assert client.forwarder.target.pod == "web-old"
        del api.state.pods[("shop", "web-old")]
        _injected_pod(api, sidecar, "web-new")
        api.stopping.set()  # the rollout killed the old pod's stream
        time.sleep(0.8)
        api.stopping.clear()
        info = client.info.GetInfo(
            info_pb2.GetInfoRequest(), timeout=15, metadata=client.metadata, wait_for_ready=True
        )
        assert info.api_version
        assert client.forwarder.target.pod == "web-new"
    finally:
        client.close()


def test_selector_picks_the_ready_pod_with_the_sidecar(
    api: FakeApiServer, sidecar: Running, kubeconfig: str
) -> None:
    """-l app=web prefers a ready pod that carries the sidecar over one that does not."""
    api.state.add_pod(make_pod("web-plain", "shop", labels={"app": "web"}, created=time.time()))
    _injected_pod(api, sidecar, "web-0")
    client = open_client(parse_target("", "app=web"), KubeOptions(kubeconfig=kubeconfig))
    try:
        assert client.pod.pod == "web-0"
        assert client.handshake(timeout=10).api_version
    finally:
        client.close()


def test_closing_mid_stream_leaves_no_thread_tracebacks(
    api: FakeApiServer, kubeconfig: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A client that hangs up while the pod is still sending (a stream cut short):
    each forward ends all the way to the pod (the one-at-a-time "pod" below
    serves the next connection only if the previous one was closed), and no
    thread (the kubernetes client's proxy included) dies with an exception a
    user would see as a traceback."""
    stop = threading.Event()
    server = socket.create_server(("127.0.0.1", 0))

    def chatty() -> None:  # the "pod": streams bytes until the peer goes away
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            except OSError:
                return  # closed at the end of the test
            with conn, contextlib.suppress(OSError):
                while not stop.is_set():
                    conn.sendall(b"x" * 65536)

    threading.Thread(target=chatty, daemon=True).start()
    api.state.add_pod(
        make_pod("stream-0", "shop", containers=[{"name": "app", "image": "a"}, dict(SIDECAR)]),
        address=f"127.0.0.1:{server.getsockname()[1]}",
    )
    died: list[threading.ExceptHookArgs] = []
    monkeypatch.setattr(threading, "excepthook", died.append)
    cluster = kube_config.load(kubeconfig=kubeconfig)
    target = resolve(cluster, parse_target("pod/stream-0"))
    try:
        with Forwarder(cluster, target) as fwd:
            for _ in range(10):
                with socket.create_connection(("127.0.0.1", fwd.port), 5) as c:
                    assert c.recv(1024)  # data is flowing...
                # ...and the client leaves with the pipe full.
            time.sleep(1.0)  # let the proxies notice the last close
    finally:
        stop.set()
        server.close()
    assert died == [], [f"{d.exc_type.__name__}: {d.exc_value}" for d in died]
    assert fwd.connections == 10


def test_concurrent_streams_are_capped(
    api: FakeApiServer, sidecar: Running, kubeconfig: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past MAX_STREAMS open connections the listener refuses more (closes them at once)
    and says why, instead of opening websockets without bound."""
    monkeypatch.setattr("tui.kube.portforward.MAX_STREAMS", 2)
    _injected_pod(api, sidecar)
    cluster = kube_config.load(kubeconfig=kubeconfig)
    target = resolve(cluster, parse_target("pod/web-0"))
    with Forwarder(cluster, target) as fwd:
        held = [socket.create_connection(("127.0.0.1", fwd.port), 5) for _ in range(2)]
        deadline = time.monotonic() + 5
        while fwd.connections < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        with socket.create_connection(("127.0.0.1", fwd.port), 5) as extra:
            extra.settimeout(5)
            assert extra.recv(1) == b""  # closed by the forwarder, not forwarded
        assert "more than 2 connections" in fwd.last_error
        for s in held:
            s.close()
    assert fwd.connections == 2


def test_silent_api_server_times_out_with_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """An API server that accepts but never answers: the call gives up after the request
    timeout with one line naming the server, instead of hanging the terminal."""
    monkeypatch.setattr("tui.kube.targets.REQUEST_TIMEOUT", (1.0, 1.0))
    with socket.create_server(("127.0.0.1", 0)) as silent:
        srv = FakeApiServer()  # only for its kubeconfig writer; never started
        srv.url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        kc = srv.kubeconfig(str(tmp_path / "kc"), namespace="shop")
        srv.server_close()
        started = time.monotonic()
        rc = cli_main(["info", "--target", "pod/web-0", "--kubeconfig", kc])
        took = time.monotonic() - started
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert "cannot reach the Kubernetes API at http://127.0.0.1" in err and "timed out" in err
    assert took < 10


def test_forwarded_target_serves_commands_with_their_own_client(
    api: FakeApiServer, sidecar: Running, kubeconfig: str
) -> None:
    """forwarded_target(args) keeps a port-forward up and yields a Target (address + the
    Secret's token) that the TUI's own handshake can use; leaving it stops the forward."""
    import argparse

    from tui.cli.common import add_connection_args, forwarded_target
    from tui.cli.tui_cmd import handshake

    _injected_pod(api, sidecar)
    p = argparse.ArgumentParser()
    add_connection_args(p)
    args = p.parse_args(["--target", "pod/web-0", "-n", "shop", "--kubeconfig", kubeconfig])
    with forwarded_target(args) as target:
        assert target.token == sidecar.token
        client, info = handshake(target, timeout=10)
        assert info.api_version
        client.close()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", int(target.address.rsplit(":", 1)[1])), 1).close()


def test_failed_forwards_back_off_exponentially(api: FakeApiServer, kubeconfig: str) -> None:
    """Consecutive failures (the sidecar's port refuses) space the next attempts out
    0.1 s, 0.2 s, 0.4 s ... instead of hammering the API server."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"127.0.0.1:{s.getsockname()[1]}"
    api.state.add_pod(
        make_pod("web-1", "shop", containers=[{"name": "app", "image": "a"}, dict(SIDECAR)]),
        address=dead,
    )
    cluster = kube_config.load(kubeconfig=kubeconfig)
    with Forwarder(cluster, resolve(cluster, parse_target("pod/web-1"))) as fwd:
        for _ in range(5):
            with socket.create_connection(("127.0.0.1", fwd.port), 5) as c:
                c.settimeout(5)
                assert c.recv(1) == b""  # the forward failed and closed it
    times = [r["time"] for r in api.state.seen("GET", "/pods/web-1/portforward")]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert len(gaps) == 4
    assert gaps[1] >= 0.18 and gaps[2] >= 0.36 and gaps[3] >= 0.75, gaps
    assert "connection refused" in fwd.last_error


def test_tui_reaches_a_pod_through_the_portforward(
    api: FakeApiServer, sidecar: Running, kubeconfig: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """`borescope tui --target pod/NAME` handshakes through a port-forward (not --addr):
    with a token Secret that does not match, it stops before the UI with one line, exit 2."""
    _injected_pod(api, sidecar)
    api.state.secrets[("shop", "bs-token")]["data"] = {
        "token": base64.b64encode(b"not-the-token").decode()
    }
    rc = cli_main(["tui", "--target", "pod/web-0", "--kubeconfig", kubeconfig])
    err = capsys.readouterr().err
    assert rc == 2, err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "UNAUTHENTICATED" in err or "not authenticated" in err.lower()
    assert api.state.seen("GET", "/portforward"), "the handshake did not go through a port-forward"
