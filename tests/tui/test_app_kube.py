"""Switching target to a pod through the Kubernetes layer, against a fake API server.

Only the API server is fake (tests/integration/fake_apiserver.py, the outer
edge); the kubernetes client, the port-forward websocket, borescope's
forwarder, the sidecar and the app are real.
"""

from __future__ import annotations

import base64
import os
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Running
from tests.integration.fake_apiserver import FakeApiServer, make_pod
from tests.tui.test_app import notes, wait_for
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


# --- the app's stdout through the Kubernetes API, on the home screen ---------------------


def _kube_rows(screen: Any) -> list[Any]:
    return [r for r in list(screen.rows) if r.source_id.startswith("kube:")]


async def _home(pilot: Any) -> Any:
    from tui.screens.logs import LogsScreen

    await wait_for(pilot, lambda: isinstance(pilot.app.screen, LogsScreen))
    return pilot.app.screen


async def test_home_merges_the_apps_stdout_read_through_the_api(
    api: FakeApiServer, pilot_sidecar: Running
) -> None:
    """Reached through a port-forward, the home screen also follows the app container's
    output through pods/log (never the sidecar's own): merged into the same stream as the
    sidecar's records, named k8s:CONTAINER, JSON read as message + fields with its level,
    text levels read too, new lines shown while following, e jumps to its errors."""
    from tui.kube.connect import KubeOptions, open_client

    _pods(api, pilot_sidecar)
    now = time.time()
    api.state.append_log("shop", "web-0", "app", "INFO listening on :8080", now - 3)
    api.state.append_log(
        "shop", "web-0", "app", '{"level":"error","msg":"payment failed","order":42}', now - 2
    )
    api.state.append_log("shop", "web-0", "borescope", "the sidecar's own output", now - 1)
    client = open_client("pod/web-0", KubeOptions("fake", "shop"))
    try:
        client.wait_ready(10)
        app: Any = make_app(client)
        async with app.run_test(size=(140, 40)) as pilot:
            screen = await _home(pilot)
            await wait_for(pilot, lambda: len(_kube_rows(screen)) >= 2, timeout=15)
            started, failed = _kube_rows(screen)[:2]
            assert started.text == "INFO listening on :8080" and started.level == 3
            assert (failed.message, failed.fields, failed.level) == (
                "payment failed",
                "order=42",
                5,
            )
            assert screen.names[failed.source_id] == "k8s:app"
            assert started.time_ns < failed.time_ns
            # One stream with the sidecar's own sources (files, the recorder).
            await wait_for(
                pilot, lambda: {r.source_id for r in screen.line_rows} - {failed.source_id}
            )
            line = next(x for x in screen.view.lines if "payment failed" in x)
            assert line.split()[1:] == ["ERROR", "k8s:app", "payment", "failed", "order=42"]
            api.state.append_log("shop", "web-0", "app", "WARN disk almost full", time.time())
            await wait_for(
                pilot, lambda: any("disk almost full" in x for x in screen.view.lines), timeout=10
            )
            await pilot.press("space")  # pause, then e from just above the error
            y = next(y for y, r in enumerate(screen.line_rows) if r is failed)
            screen._pos = max(0, y - 1)
            await pilot.press("e")
            assert screen.line_rows[screen._pos].message == "payment failed"
            assert not any("sidecar's own" in r.text for r in screen.rows)
        queries = [q["query"] for q in api.state.seen("GET", "/pods/web-0/log")]
        assert queries and all(q["container"] == ["app"] for q in queries)
        assert all(q["timestamps"] == ["true"] and q["follow"] == ["true"] for q in queries)
    finally:
        client.close()


async def test_refused_pods_log_is_one_notice_and_the_sidecar_logs_go_on(
    api: FakeApiServer, pilot_sidecar: Running
) -> None:
    """RBAC refuses pods/log: one warning that says so (the API's words), the sidecar's own
    logs are still shown, no internal error."""
    from tui.kube.connect import KubeOptions, open_client

    _pods(api, pilot_sidecar)
    api.state.forbidden.add(("get", "pods/log"))
    client = open_client("pod/web-0", KubeOptions("fake", "shop"))
    try:
        client.wait_ready(10)
        app: Any = make_app(client)
        async with app.run_test(size=(140, 40)) as pilot:
            screen = await _home(pilot)
            await wait_for(
                pilot, lambda: any("Kubernetes API stopped" in n for n in notes(app)), timeout=15
            )
            (note,) = [n for n in notes(app) if "Kubernetes API" in n]
            assert "forbidden" in note.lower() or "cannot get" in note.lower()
            await wait_for(pilot, lambda: len(screen.line_rows) > 0, timeout=10)
            assert not _kube_rows(screen)
            assert not [n for n in notes(app) if "Internal error" in n]
    finally:
        client.close()


async def test_not_read_twice_when_the_sidecar_reads_stdout_itself(
    api: FakeApiServer, fixed_app_process: Any, tmp_path: Path
) -> None:
    """Where the sidecar has the app's stdout as a source of its own (the CRI capture file),
    the API's copy is not followed: every line would show twice."""
    from sidecar.config import Config
    from tests.conftest import start_sidecar
    from tui.kube.connect import KubeOptions, open_client

    cri = tmp_path / "app-0.log"
    cri.write_text("2026-11-23T03:14:00.000000000Z stdout F hello from stdout\n")
    r = start_sidecar(
        Config(local_root=fixed_app_process.pid, pod_name="pilot-pod", stdio_logs=(str(cri),))
    )
    _pods(api, r)
    api.state.append_log("shop", "web-0", "app", "hello from stdout", time.time())
    client = open_client("pod/web-0", KubeOptions("fake", "shop"))
    try:
        client.wait_ready(10)
        app: Any = make_app(client)
        async with app.run_test(size=(140, 40)) as pilot:
            screen = await _home(pilot)
            await wait_for(pilot, lambda: screen._kube is not None and screen._kube.skipped)
            await wait_for(
                pilot, lambda: any("hello from stdout" in r.text for r in screen.rows), timeout=10
            )
            await pilot.pause(0.5)
            assert [r.text for r in screen.rows].count("hello from stdout") == 1
        assert not api.state.seen("GET", "/log")
    finally:
        client.close()
        r.client.close()
        r.sidecar.stop(0)


def _tui_in_tmux(tmp_path: Path) -> Any:
    """`borescope tui --target pod/web-0` (context fake, ns shop) in a real tmux terminal."""
    from tests.tui.test_tmux import ROOT, Tmux

    env = {
        "KUBECONFIG": os.environ["KUBECONFIG"],
        "XDG_STATE_HOME": str(tmp_path / "state"),
        "TERM": "xterm-256color",
        "PYTHONPATH": str(ROOT),
    }
    argv = [sys.executable, "-m", "tui.cli.main", "tui", "--target", "pod/web-0"]
    return Tmux([*argv, "--context", "fake", "-n", "shop"], env, (140, 40))


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
def test_borescope_tui_through_kubernetes_shows_the_apps_stdout(
    api: FakeApiServer, pilot_sidecar: Running, tmp_path: Path
) -> None:
    """`borescope tui --target pod/web-0` in a real terminal: the home screen has the app's
    output read through the API (k8s:app) among the sidecar's logs; q leaves cleanly."""
    _pods(api, pilot_sidecar)
    api.state.append_log("shop", "web-0", "app", '{"level":"warn","msg":"cart slow","ms":950}')
    t = _tui_in_tmux(tmp_path)
    try:
        t.wait_for("f Filter", timeout=30)
        t.keys("f")
        t.wait_for("show only lines matching")
        t.keys("k8s", "Enter")
        screen = t.wait_for("cart slow ms=950", timeout=20)
        line = next(x for x in screen.splitlines() if "cart slow" in x)
        assert line.split()[1:5] == ["WARN", "k8s:app", "cart", "slow"]
        t.keys("q")
        assert t.exit_status() == 0
        assert "Traceback" not in t.screen()
    finally:
        t.close()


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
def test_shell_key_suspends_the_tui_for_a_shell_in_the_sidecar(
    api: FakeApiServer, pilot_sidecar: Running, tmp_path: Path
) -> None:
    """In a real terminal, S suspends the TUI and runs a shell over pods/exec in the sidecar
    container; typing reaches it, and exiting brings the TUI back with the exit status."""
    _pods(api, pilot_sidecar)
    t = _tui_in_tmux(tmp_path)
    try:
        t.wait_for("f Filter", timeout=30)
        t.keys("S")
        t.wait_for("borescope: shell in the borescope container of shop/web-0", timeout=20)
        t.keys("echo shell-$((6*7))", "Enter")
        t.wait_for("shell-42", timeout=10)
        t.keys("exit 3", "Enter")
        t.wait_for("exited with status 3", timeout=20)
        q = api.state.seen("GET", "/pods/web-0/exec")[0]["query"]
        assert q["container"] == ["borescope"] and q["tty"] == ["true"], q
        t.keys("q")
        assert t.exit_status() == 0
        assert "Traceback" not in t.screen()
    finally:
        t.close()


async def test_shell_key_on_a_direct_connection_is_a_notice(pilot_sidecar: Running) -> None:
    """Without Kubernetes there is no pod to exec into: S says what to do instead."""
    app: Any = make_app(pilot_sidecar.client)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("S")
        await wait_for(
            pilot, lambda: any("needs a connection through Kubernetes" in n for n in notes(app))
        )
