"""The Network service inside the sandbox pod (a real pod: the sidecar shares the app's namespaces).

The sidecar runs in the pod's network namespace here, so this is the
production path (sock_diag and rtnetlink from its own namespace, owners
across the pod's PID namespace), checked against ``ss`` and ``ip`` run with
``nsenter --net`` on the pod.
"""

from __future__ import annotations

import json
import re
import subprocess

import pytest

from protos import network_pb2
from sidecar.sandbox.harness import Sandbox
from tests.e2e.conftest import sandbox_pod
from tui.client import Client, Target

__all__ = ["sandbox_pod"]
pytestmark = pytest.mark.sandbox


def _in_pod(sb: Sandbox, *argv: str) -> str:
    return subprocess.run(
        ["nsenter", f"--net={sb.netns}", *argv],
        check=True,
        capture_output=True,
        text=True,
        timeout=20,
    ).stdout


def _client(sb: Sandbox) -> Client:
    c = Client(Target(sb.address, sb.token))
    c.wait_ready(5)
    return c


def test_app_listener_and_pod_sockets_match_ss(sandbox_pod: Sandbox) -> None:
    """The demo app's HTTP port is listed LISTEN with the app's pid, and the pod's TCP listeners
    are exactly those ``ss -tlnp`` shows in the pod (owners compared via host pids)."""
    with _client(sandbox_pod) as c:
        resp = c.network.ListSockets(
            network_pb2.ListSocketsRequest(
                listening_only=True, protocols=[network_pb2.SOCKET_PROTOCOL_TCP]
            ),
            metadata=c.metadata,
            timeout=10,
        )
    ours = {
        (s.local_address, s.local_port): {o.process.pid for o in s.owners} for s in resp.sockets
    }
    app = next(v for (addr, port), v in ours.items() if port == sandbox_pod.http_port)
    assert sandbox_pod.app_pid in app
    host_to_pod = {
        sandbox_pod.app_host_pid: sandbox_pod.app_pid,
        sandbox_pod.sidecar_host_pid: sandbox_pod.sidecar_pid,
    }
    theirs = {}
    for line in _in_pod(sandbox_pod, "ss", "-tlnpH").splitlines():
        f = line.split()
        host, _, port = f[3].rpartition(":")
        pids = {int(p) for p in re.findall(r"pid=(\d+)", line)}
        theirs[(host.strip("[]").replace("*", "0.0.0.0"), int(port))] = {
            host_to_pod.get(p, -p) for p in pids
        }
    assert set(ours) == set(theirs)
    for key, pids in theirs.items():
        # ss sees host pids; those of the app and the sidecar map to the pod's pids.
        known = {p for p in pids if p > 0}
        assert known <= ours[key], key


def test_pod_interfaces_match_ip_addr(sandbox_pod: Sandbox) -> None:
    """Interfaces and addresses are the pod's (as ``ip -j addr`` in its namespace shows them)."""
    with _client(sandbox_pod) as c:
        resp = c.network.ListInterfaces(
            network_pb2.ListInterfacesRequest(), metadata=c.metadata, timeout=10
        )
    ours = {i.name: sorted(a.address for a in i.addresses) for i in resp.interfaces}
    theirs = {
        i["ifname"]: sorted(a["local"] for a in i.get("addr_info", []))
        for i in json.loads(_in_pod(sandbox_pod, "ip", "-j", "addr"))
    }
    assert ours == theirs
