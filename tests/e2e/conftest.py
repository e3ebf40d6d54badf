"""The sandbox pod fixture: a shell-less app and a real sidecar in shared namespaces.

``sandbox_pod`` (session-scoped, root only) yields a running
``sidecar.sandbox.harness.Sandbox`` in pod mode. Attributes tests use:

- ``address``, ``token``: the sidecar's gRPC port on the host (a port-forward
  into the pod's network namespace) and the bearer token.
- ``app_pid`` / ``sidecar_pid``: pids as the sidecar sees them (the pod's PID
  namespace); ``app_host_pid`` / ``sidecar_host_pid``: as the host sees them.
- ``app_uid`` (10001), ``app_root`` (host path of the app's root dir),
  ``log_file`` (``/var/log/demo/app.log``, a path inside the app's root;
  ``app_log_host_path`` is the host path), ``stdio_log`` (host path of the
  CRI-format stdout/stderr capture the sidecar's ``stdio_logs`` points at),
  ``http_port`` (8080, inside the pod), ``netns`` (``/proc/PID/ns/net``, for
  ``nsenter --net=``), ``canary`` (the app's DB_PASSWORD value).
- ``restart_app()``: SIGTERM the app and start it again; returns the new pid.
  The app is also restarted whenever it exits on its own (restart policy
  Always, kubelet-like backoff from 1 s): ``restarts`` counts both,
  ``last_exit`` is the last exit status (negative = signal, -9 after an OOM kill).
- ``cgroups``: per-container cgroups (``cgroups["demo-app"].dirs``, ``.limits``).
- The app's HTTP API (port 8080 in the pod's netns): ``/``, ``/healthz``,
  ``/slow?ms=N``, ``/error`` (500 + an error record), ``/crash`` (exit 3),
  ``/alloc?mb=N`` / ``/free`` (hold memory: RSS jump, or OOM past 256 MiB).
  It calls itself every ``APP_INTERVAL_S``: info, warning and error records
  arrive in its log and on stdout within ~2 s.

A test that restarts the app or otherwise changes the pod should use
``fresh_sandbox_pod`` (its own pod, function-scoped) so other tests keep a
steady target. A pod with other knobs: ``sidecar.sandbox.start.start_sandbox(
"pod", interval=..., settings=["allow_signals=true", ...], log_max_bytes=4096,
sidecar_as_app_user=True)`` used as a context manager (see test_rotation.py,
test_least_privilege.py). Starting one takes ~1 s, closing ~0.3 s.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from sidecar.sandbox.harness import Sandbox
from sidecar.sandbox.start import start_sandbox
from tui.client import Client, Target

#: Seconds between the demo app's self-calls: a few log lines a second.
APP_INTERVAL_S = 0.25


def _require_root() -> None:
    if os.geteuid() != 0:
        pytest.skip(
            "the sandbox pod needs root (PID/network/mount namespaces, chroot); "
            "run the tests as root, e.g. in the CI container"
        )


@pytest.fixture(scope="session")
def sandbox_pod() -> Iterator[Sandbox]:
    """One sandbox pod for the whole session (do not restart its app: use fresh_sandbox_pod)."""
    _require_root()
    sb = start_sandbox("pod", interval=APP_INTERVAL_S)
    try:
        yield sb
    finally:
        sb.close()


@pytest.fixture
def fresh_sandbox_pod() -> Iterator[Sandbox]:
    """A sandbox pod of this test's own, for tests that restart or disturb the app."""
    _require_root()
    sb = start_sandbox("pod", interval=APP_INTERVAL_S)
    try:
        yield sb
    finally:
        sb.close()


@pytest.fixture
def sandbox_client(sandbox_pod: Sandbox) -> Iterator[Client]:
    """A connected client of the session's sandbox pod (token included)."""
    client = Client(Target(sandbox_pod.address, sandbox_pod.token))
    client.wait_ready(10)
    yield client
    client.close()
