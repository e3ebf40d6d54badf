"""Switching target to a pod through the Kubernetes layer, against a fake API server.

Only the API server is fake (tests/integration/fake_apiserver.py, the outer
edge); the kubernetes client, the port-forward websocket, borescope's
forwarder, the sidecar and the app are real.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Running
from tests.integration.fake_apiserver import FakeApiServer, make_pod
from tests.tui.test_app import wait_for
from tui import recent
from tui.app import make_app
from tui.screens.target_picker import KubeChoice, discover_kube_targets

SIDECAR = {"name": "borescope", "image": "borescope:test"}
INJECTED = {"borescope.io/status": "injected", "borescope.io/token-secret": "bs-token"}


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[FakeApiServer]:
    """A fake API server and a kubeconfig (contexts "fake" -> ns shop, "other") in KUBECONFIG."""
    srv = FakeApiServer().start()
    monkeypatch.setenv("KUBECONFIG", srv.kubeconfig(str(tmp_path / "kubeconfig"), "shop"))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    yield srv
    srv.stop()


def _pods(api: FakeApiServer, sidecar: Running) -> None:
    """web-0 carries the injected sidecar (reachable at the real sidecar); plain-0 does not."""
    api.state.add_pod(
        make_pod(
            "web-0",
            "shop",
            labels={"borescope.io/inject": "true"},
            annotations=INJECTED,
            containers=[{"name": "app", "image": "app:1"}, dict(SIDECAR)],
        ),
        address=sidecar.address,
    )
    api.state.add_pod(make_pod("plain-0", "shop", containers=[{"name": "app", "image": "a:1"}]))
    api.state.secrets[("shop", "bs-token")] = {
        "kind": "Secret",
        "apiVersion": "v1",
        "metadata": {"name": "bs-token", "namespace": "shop"},
        "type": "Opaque",
        "data": {"token": base64.b64encode(sidecar.token.encode()).decode()},
    }


def test_discovery_lists_only_pods_with_the_sidecar(
    api: FakeApiServer, pilot_sidecar: Running
) -> None:
    """Every context is asked; only pods carrying the sidecar are offered, with their context
    and namespace (all-namespaces listing unavailable -> the context's namespace)."""
    _pods(api, pilot_sidecar)
    found = discover_kube_targets()
    assert isinstance(found, list)
    assert KubeChoice("pod/web-0", "fake", "shop") in found
    assert not any("plain-0" in c.spec for c in found)


def test_discovery_without_kubeconfig_is_one_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """No kubeconfig and not in a cluster: one line saying so, no exception."""
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing"))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    found = discover_kube_targets()
    assert isinstance(found, str) and "kubeconfig" in found


async def test_pick_a_pod_and_switch_through_port_forward(
    api: FakeApiServer, pilot_sidecar: Running, local_sidecar: Running
) -> None:
    """ctrl+t lists web-0 under "Pods with the sidecar"; choosing it connects through a
    port-forward (token read from the pod's Secret) and the header shows that pod's sidecar."""
    _pods(api, pilot_sidecar)
    app: Any = make_app(local_sidecar.client)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app.header_state.pod not in ("", "pilot-pod"))
        await pilot.press("ctrl+t")
        await wait_for(pilot, lambda: type(app.screen).__name__ == "TargetPicker")
        pods = app.screen.query_one("#pods")
        await wait_for(pilot, lambda: pods.option_count and pods.get_option_at_index(0).id)
        assert "pod/web-0" in str(pods.get_option_at_index(0).prompt)
        pods.focus()
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.header_state.pod == "pilot-pod", timeout=15)
        assert api.state.seen("GET", "/portforward")
        assert recent.load()[0] == KubeChoice("pod/web-0", "fake", "shop").to_recent()
