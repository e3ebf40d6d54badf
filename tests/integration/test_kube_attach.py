"""attach (ephemeral container), shell (exec) and pods (discovery) against the fake API server.

When the fake API server accepts an ephemeral container, the test plays the
kubelet: it starts a real sidecar with the container's own env (the token
hash), so the token attach generated must be the one that opens it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from protos import info_pb2
from sidecar.config import Config
from tests.conftest import Running, start_sidecar
from tests.integration.fake_apiserver import FakeApiServer, make_pod
from tui.cli.main import main as cli_main
from tui.client import Client, Target
from tui.kube import config as kube_config
from tui.kube.attach import attach
from tui.kube.config import Cluster
from tui.kube.errors import KubeError
from tui.kube.portforward import Forwarder
from tui.kube.shell import run_shell
from tui.kube.targets import parse_target, resolve

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def api() -> Iterator[FakeApiServer]:
    srv = FakeApiServer().start()
    yield srv
    srv.stop()


@pytest.fixture
def kubeconfig(api: FakeApiServer, tmp_path: Path) -> str:
    return api.kubeconfig(str(tmp_path / "kc"), namespace="shop")


@pytest.fixture
def cluster(kubeconfig: str) -> Iterator[Cluster]:
    c = kube_config.load(kubeconfig=kubeconfig)
    yield c
    c.close()


@pytest.fixture
def kubelet(api: FakeApiServer) -> Iterator[list[Running]]:
    """Start a real sidecar for each ephemeral container, configured from its env."""
    started: list[Running] = []

    def start(_ns: str, _pod: str, container: dict[str, Any]) -> str:
        env = {e["name"]: e.get("value", "") for e in container.get("env", [])}
        r = start_sidecar(Config(token_sha256=env["BORESCOPE_TOKEN_SHA256"]), token="unused")
        started.append(r)
        return r.address

    api.state.on_ephemeral = start
    yield started
    for r in started:
        r.client.close()
        r.sidecar.stop(0)


def distroless_pod(name: str = "api-0", uid: int | None = 1000) -> dict[str, Any]:
    sec = {"runAsUser": uid, "runAsNonRoot": uid != 0} if uid is not None else {}
    return make_pod(
        name,
        "shop",
        containers=[{"name": "api", "image": "gcr.io/distroless/static", "securityContext": sec}],
    )


def test_attach_patches_ephemeralcontainers_and_connects_with_a_fresh_token(
    api: FakeApiServer, cluster: Cluster, kubelet: list[Running]
) -> None:
    """attach sends a strategic-merge patch of pods/ephemeralcontainers with
    targetContainerName and only the token's hash, waits for Running, and the token
    it returns opens the new sidecar through port-forward."""
    api.state.add_pod(distroless_pod())
    target, token, _notes = attach(cluster, "shop", "api-0", image="bs:test", timeout=10)
    patch = api.state.seen("PATCH", "/pods/api-0/ephemeralcontainers")[0]
    assert patch["headers"]["content-type"] == "application/strategic-merge-patch+json"
    body = json.loads(patch["body"])
    (container,) = body["spec"]["ephemeralContainers"]
    assert container["targetContainerName"] == "api"
    assert container["name"] == target.sidecar and target.sidecar.startswith("borescope-")
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert token not in patch["body"].decode()
    assert len(env["BORESCOPE_TOKEN_SHA256"]) == 64
    assert container["securityContext"]["runAsUser"] == 1000
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    with Forwarder(cluster, target) as fwd, Client(Target(fwd.address, token)) as client:
        info = client.handshake(timeout=10)
        assert info.api_version
        # The pod now lists the attached sidecar as its way in.
        again = resolve(cluster, parse_target("pod/api-0"))
        assert again.sidecar == target.sidecar and again.sidecar_kind == "ephemeral"
        assert again.port == target.port == 7778
    with (
        Forwarder(cluster, target) as fwd,
        Client(Target(fwd.address, "wrong")) as client,
        pytest.raises(grpc.RpcError) as err,
    ):
        client.info.GetInfo(info_pb2.GetInfoRequest(), timeout=5, metadata=client.metadata)
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_second_attach_uses_the_next_port(
    api: FakeApiServer, cluster: Cluster, kubelet: list[Running]
) -> None:
    """Ephemeral containers share the pod's network: each attach listens on a new port."""
    api.state.add_pod(distroless_pod())
    first, _, _ = attach(cluster, "shop", "api-0", image="bs:test", timeout=10)
    second, _, _ = attach(cluster, "shop", "api-0", image="bs:test", timeout=10)
    assert (first.port, second.port) == (7778, 7779)


def test_attach_profiles(api: FakeApiServer, cluster: Cluster, kubelet: list[Running]) -> None:
    """restricted refuses a root app with a hint; general adds SYS_PTRACE as root."""
    api.state.add_pod(distroless_pod("root-0", uid=0))
    with pytest.raises(KubeError, match="--profile general"):
        attach(cluster, "shop", "root-0", image="bs:test")
    _target, _, notes = attach(
        cluster, "shop", "root-0", profile="general", image="bs:test", timeout=10
    )
    sc = api.state.pods[("shop", "root-0")]["spec"]["ephemeralContainers"][0]["securityContext"]
    assert sc["capabilities"]["add"] == ["SYS_PTRACE"] and sc["runAsUser"] == 0
    assert any("SYS_PTRACE" in n for n in notes)


def test_attach_rbac_and_invalid_and_stuck(api: FakeApiServer, cluster: Cluster) -> None:
    """403 names patch on pods/ephemeralcontainers; a missing container is named; a
    container that never starts times out with its waiting reason."""
    api.state.add_pod(distroless_pod())
    api.state.forbidden.add(("patch", "pods/ephemeralcontainers"))
    with pytest.raises(
        KubeError, match="needs patch on pods/ephemeralcontainers in namespace shop"
    ):
        attach(cluster, "shop", "api-0", image="bs:test")
    api.state.forbidden.clear()
    with pytest.raises(KubeError, match="no container 'nope'"):
        attach(cluster, "shop", "api-0", target_container="nope", image="bs:test")
    api.state.ephemeral_start_s = 3600
    with pytest.raises(KubeError, match=r"not running after 1s \(ContainerCreating\)"):
        attach(cluster, "shop", "api-0", image="bs:test", timeout=1)


def test_shell_runs_a_real_process_over_exec(
    api: FakeApiServer, cluster: Cluster, tmp_path: Path
) -> None:
    """run_shell opens pods/exec in the sidecar container, carries stdin and stdout,
    closes stdin at EOF (v5) and returns the remote exit code."""
    api.state.add_pod(
        make_pod(
            "web-0",
            "shop",
            containers=[{"name": "app", "image": "a"}, {"name": "borescope", "image": "b"}],
        )
    )
    target = resolve(cluster, parse_target("pod/web-0"))
    stdin_r, stdin_w = os.pipe()
    os.write(stdin_w, b"echo hello-from-the-sidecar\nexit 3\n")
    os.close(stdin_w)
    out = tmp_path / "out"
    with open(out, "wb") as fout:
        code = run_shell(
            cluster,
            target,
            ["/bin/sh"],
            stdin_fd=stdin_r,
            stdout_fd=fout.fileno(),
            stderr_fd=fout.fileno(),
        )
    os.close(stdin_r)
    assert code == 3
    assert b"hello-from-the-sidecar" in out.read_bytes()
    q = api.state.seen("GET", "/pods/web-0/exec")[0]["query"]
    assert (
        q["container"] == ["borescope"] and q["command"] == ["/bin/sh"] and q["stdin"] == ["true"]
    )


def test_shell_forbidden_names_pods_exec(api: FakeApiServer, cluster: Cluster) -> None:
    """A 403 on the exec upgrade says 'needs create on pods/exec'."""
    api.state.add_pod(
        make_pod(
            "web-0",
            "shop",
            containers=[{"name": "app", "image": "a"}, {"name": "borescope", "image": "b"}],
        )
    )
    api.state.forbidden.add(("create", "pods/exec"))
    target = resolve(cluster, parse_target("pod/web-0"))
    with pytest.raises(KubeError, match="needs create on pods/exec in namespace shop"):
        run_shell(cluster, target, ["/bin/true"], stdin_fd=os.open(os.devnull, os.O_RDONLY))


def test_pods_lists_who_has_the_sidecar(
    api: FakeApiServer, kubeconfig: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """`borescope pods` shows injected/static/none per pod, says how many lack it, and
    flags pods labelled for injection that did not get it."""
    api.state.add_pod(
        make_pod(
            "web-0",
            "shop",
            labels={"app": "web"},
            annotations={"borescope.io/status": "injected"},
            containers=[{"name": "app", "image": "a"}, {"name": "borescope", "image": "b"}],
        )
    )
    api.state.add_pod(make_pod("web-1", "shop", labels={"app": "web"}))
    api.state.add_pod(make_pod("db-0", "shop", labels={"app": "db", "borescope.io/inject": "true"}))
    rc = cli_main(["pods", "--kubeconfig", kubeconfig, "-l", "app=web", "-o", "json"])
    out = capsys.readouterr()
    assert rc == 0
    rows = {r["name"]: r for r in json.loads(out.out)}
    assert set(rows) == {"web-0", "web-1"}
    assert rows["web-0"]["sidecar"] == "injected" and rows["web-0"]["port"] == 7777
    assert rows["web-1"]["sidecar"] == ""
    rc = cli_main(["pods", "--kubeconfig", kubeconfig])
    out = capsys.readouterr()
    assert "2 of 3 pods have no sidecar" in out.err
    assert "not injected: db-0" in out.err and "MISSING" in out.out
    assert "borescope attach pod/NAME" in out.err


def test_cli_attach_no_tui_forwards_and_prints_the_token(
    api: FakeApiServer, kubeconfig: str, kubelet: list[Running]
) -> None:
    """`borescope attach pod/NAME --no-tui` (a real CLI process) reports progress on stderr,
    prints the forward address and token on stdout, and they open the sidecar; Ctrl-C ends it."""
    api.state.add_pod(distroless_pod())
    proc = subprocess.Popen(
        [sys.executable, "-m", "tui.cli.main", "attach", "pod/api-0", "--kubeconfig", kubeconfig,
         "--image", "bs:test", "--no-tui", "--timeout", "10"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        addr = proc.stdout.readline().strip().removeprefix("BORESCOPE_ADDR=")
        token = proc.stdout.readline().strip().removeprefix("BORESCOPE_TOKEN=")
        with Client(Target(addr, token)) as client:
            assert client.handshake(timeout=10).api_version
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    assert "is running; forwarding" in err and "Traceback" not in err


def test_cli_attach_forbidden_is_one_line(
    api: FakeApiServer, kubeconfig: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A forbidden attach ends with one line naming the permission, exit 2, no traceback."""
    api.state.add_pod(distroless_pod())
    api.state.forbidden.add(("patch", "pods/ephemeralcontainers"))
    rc = cli_main(["attach", "pod/api-0", "--kubeconfig", kubeconfig, "--image", "bs:test"])
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err
    assert err.splitlines()[-1].startswith(
        "borescope: forbidden: needs patch on pods/ephemeralcontainers"
    )
