"""Issue 2's end-to-end proof: the sandbox pod, a real sidecar, a real gRPC channel.

Each test asks the sidecar (through the port-forward into the pod's network
namespace, with the bearer token) and checks the answer against the kernel's
own view or the bytes on disk, read from the host.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import grpc
import pytest

from protos import files_pb2, info_pb2, logs_pb2, network_pb2, processes_pb2
from protos.common_pb2 import ContainerSelector, ProcessRef
from sidecar.sandbox.harness import Sandbox
from tui.client import Client, Target

pytestmark = pytest.mark.sandbox
T = 10.0  # per-call timeout


def _containers(sb: Sandbox, client: Client) -> dict[int, info_pb2.Container]:
    resp = client.info.ListContainers(
        info_pb2.ListContainersRequest(include_sidecar=True, include_infra=True),
        metadata=client.metadata,
        timeout=T,
    )
    by_kind: dict[int, info_pb2.Container] = {}
    for c in resp.containers:
        by_kind.setdefault(c.kind, c)
    return by_kind


def _pod_pids_in_mnt_ns(host_pid: int) -> set[int]:
    """The kernel's answer: pod pids of every process in ``host_pid``'s mount namespace."""
    mnt = os.stat(f"/proc/{host_pid}/ns/mnt").st_ino
    out = set()
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            if os.stat(f"/proc/{name}/ns/mnt").st_ino != mnt:
                continue
            status = Path(f"/proc/{name}/status").read_text()
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue  # exited meanwhile, or outside our reach (not in the pod)
        nspid = next(x for x in status.splitlines() if x.startswith("NSpid:"))
        out.add(int(nspid.split()[-1]))
    return out


def _sel(container: info_pb2.Container) -> ContainerSelector:
    return ContainerSelector(id=container.id)


def test_app_processes_are_a_container_distinct_from_the_sidecar(
    sandbox_pod: Sandbox, sandbox_client: Client
) -> None:
    """ListContainers/ListProcesses put the app's tree in an APP container, apart from the sidecar."""
    kinds = _containers(sandbox_pod, sandbox_client)
    app = kinds[info_pb2.CONTAINER_KIND_APP]
    sidecar = kinds[info_pb2.CONTAINER_KIND_SIDECAR]
    infra = kinds[info_pb2.CONTAINER_KIND_INFRA]
    assert app.id != sidecar.id != infra.id
    assert app.root_process.pid == sandbox_pod.app_pid
    assert set(app.pids) == _pod_pids_in_mnt_ns(sandbox_pod.app_host_pid)
    assert len(app.pids) >= 2, "the app and its worker"
    assert sandbox_pod.sidecar_pid in sidecar.pids and sandbox_pod.sidecar_pid not in app.pids
    assert list(infra.pids) == [1]
    procs = sandbox_client.processes.ListProcesses(
        processes_pb2.ListProcessesRequest(), metadata=sandbox_client.metadata, timeout=T
    ).processes
    owner = {p.ref.pid: p.container_id for p in procs}
    assert owner[sandbox_pod.app_pid] == app.id
    assert owner[sandbox_pod.sidecar_pid] == sidecar.id
    app_procs = [p for p in procs if p.container_id == app.id]
    assert {p.uid for p in app_procs} == {sandbox_pod.app_uid}
    root = next(p for p in app_procs if p.ref.pid == sandbox_pod.app_pid)
    assert root.cmdline[:3] == ["/usr/local/bin/demo-app", "-I", "/app/main.py"]
    assert root.threads >= 1 and root.rss_bytes > 0


def test_app_root_has_no_shell_while_the_sidecars_has_one(
    sandbox_pod: Sandbox, sandbox_client: Client
) -> None:
    """Listing the app's root shows no /bin/sh (NOT_FOUND); the sidecar's root has one."""
    c = sandbox_client
    kinds = _containers(sandbox_pod, c)
    app, sidecar = kinds[info_pb2.CONTAINER_KIND_APP], kinds[info_pb2.CONTAINER_KIND_SIDECAR]
    listing = c.files.ListDir(
        files_pb2.ListDirRequest(container=_sel(app), path="/"), metadata=c.metadata, timeout=T
    )
    names = {e.name for e in listing.entries}
    assert names == set(os.listdir(f"/proc/{sandbox_pod.app_host_pid}/root"))
    assert "bin" not in names and {"app", "usr", "var", "etc"} <= names
    with pytest.raises(grpc.RpcError) as err:
        c.files.Stat(
            files_pb2.StatRequest(container=_sel(app), path="/bin/sh"),
            metadata=c.metadata,
            timeout=T,
        )
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    sh = c.files.Stat(
        files_pb2.StatRequest(container=_sel(sidecar), path="/bin/sh", follow_symlinks=True),
        metadata=c.metadata,
        timeout=T,
    )
    assert sh.type == files_pb2.FILE_TYPE_REGULAR


def test_reading_the_app_log_returns_exactly_the_bytes_on_disk(
    sandbox_pod: Sandbox, sandbox_client: Client
) -> None:
    """ReadFile of the app's log (a growing file) and of its code equals the bytes on disk."""
    c = sandbox_client
    resp = c.files.ReadFile(
        files_pb2.ReadFileRequest(path=sandbox_pod.log_file, offset=0, length=64 * 1024),
        metadata=c.metadata,
        timeout=T,
    )
    disk = Path(sandbox_pod.app_log_host_path).read_bytes()  # read after: the file only grows
    assert resp.data, "the log is empty"
    assert resp.data == disk[: len(resp.data)]
    assert resp.offset == 0
    code = c.files.ReadFile(
        files_pb2.ReadFileRequest(path="/app/main.py"), metadata=c.metadata, timeout=T
    )
    source = Path(sandbox_pod.app_root, "app/main.py").read_bytes()
    assert code.data == source and code.eof and code.file_size == len(source)
    middle = c.files.ReadFile(
        files_pb2.ReadFileRequest(path="/app/main.py", offset=100, length=50),
        metadata=c.metadata,
        timeout=T,
    )
    assert middle.data == source[100:150] and middle.offset == 100


def test_the_apps_listening_port_is_listed_with_its_pid(
    sandbox_pod: Sandbox, sandbox_client: Client
) -> None:
    """ListSockets shows the app's HTTP port owned by the app's pid, as ss sees it."""
    c = sandbox_client
    socks = c.network.ListSockets(
        network_pb2.ListSocketsRequest(listening_only=True), metadata=c.metadata, timeout=T
    ).sockets
    http = [s for s in socks if s.local_port == sandbox_pod.http_port]
    assert len(http) == 1, http
    assert [o.process.pid for o in http[0].owners] == [sandbox_pod.app_pid]
    assert http[0].state == "LISTEN"
    ss = subprocess.run(
        [
            "nsenter",
            f"--net={sandbox_pod.netns}",
            "ss",
            "-Hltnp",
            f"sport = :{sandbox_pod.http_port}",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=10,
    ).stdout
    assert f"pid={sandbox_pod.app_host_pid}," in ss  # the same socket, seen from the host
    grpc_port = [s for s in socks if sandbox_pod.sidecar_pid in [o.process.pid for o in s.owners]]
    assert grpc_port, "the sidecar's own listening port is listed too"


def test_bad_paths_get_the_right_status_codes(sandbox_pod: Sandbox, sandbox_client: Client) -> None:
    """Missing paths are NOT_FOUND, relative ones INVALID_ARGUMENT, escapes never leave the root."""
    c = sandbox_client

    def code(path: str) -> grpc.StatusCode:
        with pytest.raises(grpc.RpcError) as err:
            c.files.ReadFile(files_pb2.ReadFileRequest(path=path), metadata=c.metadata, timeout=T)
        assert err.value.details(), "the status carries a message"
        return err.value.code()

    assert code("/no/such/file") == grpc.StatusCode.NOT_FOUND
    assert code("etc/passwd") == grpc.StatusCode.INVALID_ARGUMENT
    # /etc/hostname exists on the host, not in the app's root: '..' must stop at the root.
    assert Path("/etc/hostname").exists()
    assert code("/../../../../etc/hostname") == grpc.StatusCode.NOT_FOUND
    tmp = Path(sandbox_pod.app_root, "tmp")
    link = tmp / f"escape-{os.getpid()}"
    fifo = tmp / f"fifo-{os.getpid()}"
    link.symlink_to("/../../../../../etc/hostname")
    os.mkfifo(fifo)
    try:
        assert code(f"/tmp/{link.name}") == grpc.StatusCode.NOT_FOUND
        assert code(f"/tmp/{fifo.name}") in (
            grpc.StatusCode.INVALID_ARGUMENT,
            grpc.StatusCode.FAILED_PRECONDITION,
            grpc.StatusCode.PERMISSION_DENIED,
        )
        # A /proc magic link from inside the app's root to the sidecar's (host) root.
        assert code(f"/proc/{sandbox_pod.sidecar_pid}/root/etc/hostname") in (
            grpc.StatusCode.PERMISSION_DENIED,
            grpc.StatusCode.INVALID_ARGUMENT,
            grpc.StatusCode.NOT_FOUND,
        )
    finally:
        link.unlink()
        fifo.unlink()


def test_app_logs_and_stdout_are_sources_with_records(
    sandbox_pod: Sandbox, sandbox_client: Client
) -> None:
    """Logs lists the app's log file and its CRI stdout, and FollowLogs returns their records."""
    c = sandbox_client
    sources = c.logs.ListSources(
        logs_pb2.ListSourcesRequest(), metadata=c.metadata, timeout=T
    ).sources
    by_path = {s.path: s for s in sources}
    assert sandbox_pod.log_file in by_path, [s.path for s in sources]
    assert any(s.kind == logs_pb2.SOURCE_KIND_STDIO for s in sources)
    file_id = by_path[sandbox_pod.log_file].id
    stdio_id = next(s.id for s in sources if s.kind == logs_pb2.SOURCE_KIND_STDIO)

    def history(source_id: str) -> list[logs_pb2.Record]:
        stream = c.logs.FollowLogs(
            logs_pb2.FollowLogsRequest(
                filter=logs_pb2.LogFilter(source_ids=[source_id]),
                start_at=logs_pb2.START_AT_BEGINNING,
                follow=False,
                limit=20,
            ),
            metadata=c.metadata,
            timeout=T,
        )
        return [r for batch in stream for r in batch.records if r.kind == logs_pb2.RECORD_KIND_LINE]

    from_file = history(file_id)
    assert from_file, "no record from the app's log file"
    lines = Path(sandbox_pod.app_log_host_path).read_bytes().decode().splitlines()
    assert [r.raw for r in from_file] == lines[: len(from_file)]
    assert from_file[0].message == "serving" and from_file[0].level == logs_pb2.LEVEL_INFO
    stdio = history(stdio_id)
    assert stdio and stdio[0].stream == "stdout"
    assert stdio[0].message == "serving", "the CRI wrapper is parsed away"


def test_secrets_in_the_apps_environment_are_redacted(
    sandbox_pod: Sandbox, sandbox_client: Client
) -> None:
    """GetProcess shows DB_PASSWORD's name but never the canary value."""
    c = sandbox_client
    detail = c.processes.GetProcess(
        processes_pb2.GetProcessRequest(ref=ProcessRef(pid=sandbox_pod.app_pid), sections=["env"]),
        metadata=c.metadata,
        timeout=T,
    )
    env = {e.name: e.value for e in detail.env}
    assert "DB_PASSWORD" in env and env["DB_PASSWORD"] != sandbox_pod.canary
    assert sandbox_pod.canary not in str(detail)
    assert env.get("APP_ENV") == "sandbox"


def test_calls_without_the_token_are_refused(sandbox_pod: Sandbox) -> None:
    """Through the port-forward, an RPC without the bearer token is UNAUTHENTICATED."""
    with Client(Target(sandbox_pod.address, "")) as anon, pytest.raises(grpc.RpcError) as err:
        anon.info.GetInfo(info_pb2.GetInfoRequest(), timeout=T)
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_a_restarted_app_is_found_again(fresh_sandbox_pod: Sandbox) -> None:
    """After the app restarts with a new pid, the sidecar lists the new pid as the app's root."""
    sb = fresh_sandbox_pod
    with Client(Target(sb.address, sb.token)) as c:
        c.wait_ready(10)
        before = _containers(sb, c)[info_pb2.CONTAINER_KIND_APP]
        new_pid = sb.restart_app()
        after = _containers(sb, c)[info_pb2.CONTAINER_KIND_APP]
        assert before.root_process.pid != after.root_process.pid == new_pid
        data = c.files.ReadFile(
            files_pb2.ReadFileRequest(path="/etc/passwd"), metadata=c.metadata, timeout=T
        ).data
        assert data == Path(sb.app_root, "etc/passwd").read_bytes()


def test_reflection_lists_every_service_for_grpcurl_users(
    sandbox_pod: Sandbox, sandbox_client: Client
) -> None:
    """The sandbox's sidecar serves reflection: tools like grpcurl can discover the v1 API."""
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    stub = reflection_pb2_grpc.ServerReflectionStub(sandbox_client.channel)
    replies = stub.ServerReflectionInfo(
        iter([reflection_pb2.ServerReflectionRequest(list_services="")]),
        metadata=sandbox_client.metadata,
        timeout=T,
    )
    names = {s.name for r in replies for s in r.list_services_response.service}
    assert {
        "borescope.v1.Info",
        "borescope.v1.Processes",
        "borescope.v1.Files",
        "borescope.v1.Network",
        "borescope.v1.Logs",
        "borescope.v1.Events",
    } <= names
