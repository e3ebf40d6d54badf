"""Auth: every method of every service, refused without the right credentials.

The sandbox pod's real sidecar (pod mode, its own network namespace) is
called from the host through the port-forward and from inside the pod: a
process running as the app's UID in the app's network and PID namespaces,
which is exactly what a compromised app could do. Methods come from the proto
descriptors, so a new RPC is covered without touching this test.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator

import grpc
import pytest

from sidecar.sandbox.harness import Sandbox
from sidecar.sandbox.podns import SIDECAR_PORT
from sidecar.sandbox.start import start_sandbox
from tests.conftest import ROOT
from tests.reliability._authwalk import MODES, methods, walk
from tests.reliability._pod import is_root

pytestmark = [
    pytest.mark.skipif(not is_root(), reason="needs root: the sandbox pod (namespaces, chroot)"),
    pytest.mark.timeout(120),
]


@pytest.fixture(scope="module")
def pod() -> Iterator[Sandbox]:
    """A sandbox pod of this module's own (the app runs as uid 10001)."""
    with start_sandbox("pod", interval=1.0) as sb:
        yield sb


@pytest.mark.parametrize("mode", sorted(MODES))
def test_every_method_refused_from_the_host(pod: Sandbox, mode: str, figures: object) -> None:
    """Through the host port-forward, every method with no, a wrong, a malformed or an
    empty bearer token ends UNAUTHENTICATED; the right token reaches a servicer (control)."""
    with grpc.insecure_channel(pod.address) as ch:
        codes = walk(ch, MODES[mode])
        good = walk(ch, (("authorization", f"Bearer {pod.token}"),))
    assert len(codes) == len(methods()) >= 28
    assert {p: c for p, c in codes.items() if c != "UNAUTHENTICATED"} == {}
    assert all(c != "UNAUTHENTICATED" for c in good.values()), good
    figures.add("test_auth", f"methods refused from the host ({mode})", len(codes), "methods")  # type: ignore[attr-defined]


def test_every_method_refused_from_the_apps_own_namespace(pod: Sandbox, figures: object) -> None:
    """A process as the app's UID (10001) inside the app's network and PID namespaces
    reaches the sidecar's in-pod port directly, and every method in every credential
    mode is UNAUTHENTICATED; that process cannot read the token hash file either."""
    enter = [
        "nsenter", f"--target={pod.app_host_pid}", "--net", "--pid", "--",
        "setpriv", f"--reuid={pod.app_uid}", f"--regid={pod.app_uid}", "--clear-groups",
    ]  # fmt: skip
    total = 0
    for mode in sorted(MODES):
        out = subprocess.run(
            [*enter, sys.executable, "-m", "tests.reliability._authwalk",
             f"127.0.0.1:{SIDECAR_PORT}", mode],
            cwd=ROOT, capture_output=True, timeout=60, check=True,
        )  # fmt: skip
        codes = json.loads(out.stdout)
        assert len(codes) == len(methods())
        assert {p: c for p, c in codes.items() if c != "UNAUTHENTICATED"} == {}, mode
        total += len(codes)
    peek = subprocess.run(
        [*enter, "cat", pod.token_hash_file], capture_output=True, timeout=10, check=False
    )
    assert peek.returncode != 0 and b"Permission denied" in peek.stderr
    figures.add("test_auth", "calls refused from the app's namespace (4 modes)", total, "calls")  # type: ignore[attr-defined]
