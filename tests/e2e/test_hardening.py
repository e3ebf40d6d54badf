"""Hardening seen from inside the sandbox pod: what the app's side can and cannot do.

The app shares the pod's PID and network namespaces with the sidecar and, in
the preferred deployment, its UID too. These tests act from the app's side.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from sidecar.sandbox.harness import Sandbox
from sidecar.sandbox.podns import ns_pid
from sidecar.sandbox.rootfs import APP_BINARY
from tests.conftest import ROOT, new_token

pytestmark = pytest.mark.sandbox

ENTER = ROOT / "sidecar" / "image" / "borescope-enter"
PORT = 7791  # inside the pod's own network namespace
SIDECAR_CANARY = "canary-sidecar-env-e2e-81b0"

READER = r"""
import json, sys
out = {}
for pid in sys.argv[1:]:
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            out[pid] = "read:" + f.read().decode(errors="replace")
    except PermissionError:
        out[pid] = "denied"
print(json.dumps(out))
"""


def only_child(pid: int) -> int:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            kids = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        except FileNotFoundError:
            kids = []
        if kids:
            return int(kids[0])
        time.sleep(0.01)
    raise AssertionError(f"no child under {pid}")


@dataclass
class AppUidSidecar:
    """A second sidecar in the pod, running as the app's UID with no capabilities."""

    proc: subprocess.Popen[bytes]
    host_pid: int
    token: str


@pytest.fixture
def app_uid_sidecar(sandbox_pod: Sandbox) -> Iterator[AppUidSidecar]:
    token, digest = new_token()
    uid = str(sandbox_pod.app_uid)
    pause = sandbox_pod.pause_host_pid  # type: ignore[attr-defined]
    argv = [
        "nsenter", f"--target={pause}", "--pid", "--net", "--",
        "unshare", "--mount", "--mount-proc", "--",
        "setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--inh-caps=-all",
        "--bounding-set=-all", "--",
        sys.executable, "-m", "sidecar", "serve", "--listen", f"127.0.0.1:{PORT}",
    ]  # fmt: skip
    env = {
        "PATH": os.environ["PATH"],
        "BORESCOPE_TOKEN_SHA256": digest,
        "SIDECAR_CANARY": SIDECAR_CANARY,
    }
    p = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert p.stdout is not None
        for line in p.stdout:
            if line.startswith(b"listening on"):
                break
        else:
            raise AssertionError(f"sidecar as app uid did not start: {p.communicate()[1]!r}")
        host_pid = only_child(p.pid)
        yield AppUidSidecar(p, host_pid, token)
    finally:
        # nsenter forked the sidecar: signal the sidecar itself, nsenter exits with it.
        with contextlib.suppress(AssertionError, ProcessLookupError):
            os.kill(only_child(p.pid), 15)
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def as_app(sb: Sandbox, *argv: str) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` inside the app's namespaces and root, as the app's uid (no caps)."""
    uid = str(sb.app_uid)
    return subprocess.run(
        ["nsenter", f"--target={sb.app_host_pid}", "--mount", "--pid", "--net", "--root", "--wd",
         f"--setuid={uid}", f"--setgid={uid}", "--", *argv],
        capture_output=True, text=True, timeout=30, check=True, env={"PATH": "/usr/bin:/bin"},
    )  # fmt: skip


def test_the_app_cannot_read_the_sidecars_environ(
    sandbox_pod: Sandbox, app_uid_sidecar: AppUidSidecar
) -> None:
    """From inside the app's container (its mount, PID and network namespaces, its root,
    its UID), the sidecar's /proc/PID/environ is refused although the sidecar runs as the
    same UID; the app's own environ (the control) is readable with its canary."""
    side_pid = ns_pid(app_uid_sidecar.host_pid)
    status = Path(f"/proc/{app_uid_sidecar.host_pid}/status").read_text()
    assert f"Uid:\t{sandbox_pod.app_uid}\t" in status  # really the app's uid
    r = as_app(sandbox_pod, APP_BINARY, "-I", "-c", READER, str(side_pid), str(sandbox_pod.app_pid))
    got = json.loads(r.stdout)
    assert got[str(side_pid)] == "denied"
    assert got[str(sandbox_pod.app_pid)].startswith("read:")
    assert sandbox_pod.canary in got[str(sandbox_pod.app_pid)]


CALLER = r"""
import sys
import grpc
from protos import info_pb2, info_pb2_grpc
ch = grpc.insecure_channel(sys.argv[1])
stub = info_pb2_grpc.InfoStub(ch)
for md in ((), (("authorization", "Bearer guessed-token"),)):
    try:
        stub.GetInfo(info_pb2.GetInfoRequest(), metadata=md, timeout=10)
        print("OK")
    except grpc.RpcError as e:
        print(e.code().name)
"""


def test_the_app_network_namespace_gets_unauthenticated(
    sandbox_pod: Sandbox, app_uid_sidecar: AppUidSidecar
) -> None:
    """A gRPC client in the pod's network namespace (where the app lives), running as the
    app's UID, reaches the sidecar's loopback port but is refused without the token."""
    uid = str(sandbox_pod.app_uid)
    r = subprocess.run(
        ["nsenter", f"--net={sandbox_pod.netns}", "--",
         "setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--inh-caps=-all",
         "--bounding-set=-all", "--", sys.executable, "-c", CALLER, "127.0.0.1:7777"],
        capture_output=True, text=True, timeout=60, check=True, cwd=ROOT,
        env={"PATH": os.environ["PATH"], "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert r.stdout.split() == ["UNAUTHENTICATED", "UNAUTHENTICATED"]


def test_borescope_enter_opens_the_apps_root_and_explains_the_mapping(
    sandbox_pod: Sandbox,
) -> None:
    """borescope-enter PID runs with its cwd at the app's root (the demo binary is at a
    relative path) and, interactively, explains that absolute paths are the sidecar's."""
    pid = str(sandbox_pod.app_host_pid)
    r = subprocess.run(
        ["sh", str(ENTER), pid, "--", "sh", "-c", f"pwd; ls .{os.path.dirname(APP_BINARY)}"],
        capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    assert r.stdout.splitlines()[0] == f"/proc/{pid}/root"
    assert os.path.basename(APP_BINARY) in r.stdout
    r = subprocess.run(
        ["sh", str(ENTER), pid], input="echo in=$T; exit\n",
        capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    assert "ABSOLUTE path" in r.stderr and f"/proc/{pid}/root" in r.stderr
    bad = subprocess.run(
        ["sh", str(ENTER), "999999999"], capture_output=True, text=True, timeout=30, check=False
    )
    assert bad.returncode == 1 and "no process" in bad.stderr
