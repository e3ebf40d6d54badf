"""Processes in the sandbox pod: a shell-less app in its own mount namespace and cgroup,
seen by the sidecar over gRPC, through an app restart."""

from __future__ import annotations

import time
from collections.abc import Iterator

import grpc
import pytest

from protos import common_pb2, info_pb2, processes_pb2
from sidecar.sandbox.harness import Sandbox
from sidecar.sandbox.podns import APP_MEMORY_BYTES
from tests.e2e.conftest import fresh_sandbox_pod  # noqa: F401 - the fixture
from tui.client import Client, Target

pytestmark = pytest.mark.sandbox


@pytest.fixture
def pod(fresh_sandbox_pod: Sandbox) -> Iterator[tuple[Sandbox, Client]]:  # noqa: F811
    client = Client(Target(fresh_sandbox_pod.address, fresh_sandbox_pod.token))
    client.wait_ready(10)
    yield fresh_sandbox_pod, client
    client.close()


def _containers(c: Client) -> list[info_pb2.Container]:
    req = info_pb2.ListContainersRequest(include_sidecar=True, include_infra=True)
    return list(c.info.ListContainers(req, metadata=c.metadata, timeout=10).containers)


def _app(c: Client) -> info_pb2.Container:
    return next(x for x in _containers(c) if x.kind == info_pb2.CONTAINER_KIND_APP)


def test_app_container_processes_details_and_restart(pod: tuple[Sandbox, Client]) -> None:
    """The app is its own container (named from its cgroup) apart from the sidecar's; its
    process and worker are listed with uid 10001; details show its cgroup memory limit,
    its listening HTTP socket and a redacted DB_PASSWORD (the canary never appears); after a restart the container counts
    one restart and the old identity is refused."""
    sb, c = pod
    app = _app(c)
    sidecar = next(x for x in _containers(c) if x.kind == info_pb2.CONTAINER_KIND_SIDECAR)
    assert sb.app_pid in app.pids and sb.sidecar_pid in sidecar.pids
    assert app.mnt_ns != sidecar.mnt_ns and app.restarts == 0
    assert app.name == "demo-app"
    listing = c.processes.ListProcesses(
        processes_pb2.ListProcessesRequest(container=common_pb2.ContainerSelector(id=app.id)),
        metadata=c.metadata,
        timeout=10,
    )
    procs = {p.ref.pid: p for p in listing.processes}
    assert set(procs) == set(app.pids) and len(procs) >= 2
    assert procs[sb.app_pid].uid == sb.app_uid
    assert any(p.ppid == sb.app_pid for p in procs.values()), "the worker child"
    ref = procs[sb.app_pid].ref
    d = c.processes.GetProcess(
        processes_pb2.GetProcessRequest(ref=ref), metadata=c.metadata, timeout=10
    )
    assert sb.canary.encode() not in d.SerializeToString()
    env = {e.name: e for e in d.env}
    assert env["DB_PASSWORD"].redacted
    if "memory" in sb.cgroups["demo-app"].limits:  # type: ignore[attr-defined]
        assert d.cgroup.memory_limit_bytes == APP_MEMORY_BYTES
        assert d.cgroup.HasField("oom_kills")
    assert d.cgroup.path.endswith("/demo-app")
    listen = [x for x in d.sockets if x.state == "LISTEN" and x.local_port == sb.http_port]
    assert listen and all(o.process.pid == sb.app_pid for o in listen[0].owners)

    sb.restart_app()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        now = _app(c)
        if now.root_process.pid != ref.pid and now.restarts == 1:
            break
        time.sleep(0.2)
    else:
        raise AssertionError(f"no restart seen: {now}")
    assert now.name == "demo-app"
    with pytest.raises(grpc.RpcError) as e:
        c.processes.GetProcess(
            processes_pb2.GetProcessRequest(ref=ref), metadata=c.metadata, timeout=10
        )
    assert e.value.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.FAILED_PRECONDITION)
