"""The sidecar as DESIGN prefers it: the app's uid, every capability dropped.

The sandbox pod is started with ``sidecar_as_app_user``: the sidecar runs as
uid 10001 with empty capability sets and no_new_privs. Everything the
Foundation promises about the app still works, through a real channel; what
needs more (the root-owned pause process) is reported as unavailable, not
as an error.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from protos import files_pb2, info_pb2, network_pb2, processes_pb2
from protos.common_pb2 import ProcessRef
from sidecar.sandbox.harness import Sandbox
from sidecar.sandbox.start import start_sandbox
from tui.client import Client, Target

pytestmark = pytest.mark.sandbox
T = 10.0


@pytest.fixture(scope="module")
def pod() -> Iterator[Sandbox]:
    """A pod whose sidecar runs as the app's uid with no capabilities."""
    if os.geteuid() != 0:
        pytest.skip("the sandbox pod needs root")
    sb = start_sandbox("pod", interval=0.25, sidecar_as_app_user=True)
    try:
        yield sb
    finally:
        sb.close()


@pytest.fixture
def client(pod: Sandbox) -> Iterator[Client]:
    c = Client(Target(pod.address, pod.token))
    c.wait_ready(10)
    yield c
    c.close()


def _status(pid: int, key: str) -> list[str]:
    line = next(
        x for x in Path(f"/proc/{pid}/status").read_text().splitlines() if x.startswith(key)
    )
    return line.split()[1:]


def test_the_sidecar_really_runs_unprivileged(pod: Sandbox, client: Client) -> None:
    """The kernel says uid 10001 and no capabilities; GetInfo reports the same."""
    assert _status(pod.sidecar_host_pid, "Uid:") == ["10001"] * 4
    for caps in ("CapEff:", "CapPrm:", "CapBnd:"):
        assert int(_status(pod.sidecar_host_pid, caps)[0], 16) == 0, caps
    info = client.info.GetInfo(info_pb2.GetInfoRequest(), metadata=client.metadata, timeout=T)
    assert info.access.uid == 10001


def test_the_app_is_fully_visible_and_pause_is_reported_not_failed(
    pod: Sandbox, client: Client
) -> None:
    """Same uid: the app's root, processes and env are readable; pause's namespace is 'unavailable'."""
    conts = client.info.ListContainers(
        info_pb2.ListContainersRequest(include_sidecar=True, include_infra=True),
        metadata=client.metadata,
        timeout=T,
    ).containers
    app = next(c for c in conts if c.kind == info_pb2.CONTAINER_KIND_APP)
    assert app.root_process.pid == pod.app_pid and app.root_accessible
    detail = client.processes.GetProcess(
        processes_pb2.GetProcessRequest(ref=ProcessRef(pid=pod.app_pid), sections=["env"]),
        metadata=client.metadata,
        timeout=T,
    )
    env = {e.name: e.value for e in detail.env}
    assert "DB_PASSWORD" in env and pod.canary not in str(detail)
    info = client.info.GetInfo(info_pb2.GetInfoRequest(), metadata=client.metadata, timeout=T)
    assert any("pause" in x for x in info.access.limitations), info.access


def test_files_and_sockets_of_the_app_work_without_privilege(pod: Sandbox, client: Client) -> None:
    """ReadFile returns the log's bytes on disk; the app's port is listed with its pid."""
    data = client.files.ReadFile(
        files_pb2.ReadFileRequest(path=pod.log_file, length=32 * 1024),
        metadata=client.metadata,
        timeout=T,
    ).data
    assert data and data == Path(pod.app_log_host_path).read_bytes()[: len(data)]
    socks = client.network.ListSockets(
        network_pb2.ListSocketsRequest(listening_only=True), metadata=client.metadata, timeout=T
    ).sockets
    http = next(s for s in socks if s.local_port == pod.http_port)
    assert [o.process.pid for o in http.owners] == [pod.app_pid]
