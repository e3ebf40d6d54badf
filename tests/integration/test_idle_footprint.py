"""The sidecar's idle footprint stays small (issue 7: RSS <= 1.1x a bare grpcio server).

A real ``python -m sidecar serve`` (local mode, reflection on, recorder on) is
asked, through SIGUSR1, which modules it has loaded: once idle, and again after
one call to every service. Idle, it holds none of the heavy or per-RPC modules
(textual, kubernetes, argparse, grpc_reflection, the socket and process
readers, the protos of services nobody has called...); every service still
answers on its first call, which loads what it needs.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_reflection.v1alpha import reflection, reflection_pb2, reflection_pb2_grpc

from protos import (
    common_pb2,
    files_pb2,
    files_pb2_grpc,
    info_pb2,
    info_pb2_grpc,
    logs_pb2,
    logs_pb2_grpc,
    network_pb2,
    network_pb2_grpc,
    processes_pb2,
    processes_pb2_grpc,
)
from sidecar.services import SERVICES
from tests.conftest import ROOT, new_token

# Runs sidecar.__main__.main as ``python -m sidecar`` would; SIGUSR1 writes the
# sorted names of the modules really loaded (not the None that blocks rich) to argv[1].
SCRIPT = """
import json, signal, sys
def dump(*_):
    with open(sys.argv[1] + ".tmp", "w") as f:
        json.dump(sorted(k for k, v in sys.modules.items() if v is not None), f)
    import os
    os.replace(sys.argv[1] + ".tmp", sys.argv[1])
signal.signal(signal.SIGUSR1, dump)
from sidecar.__main__ import main
sys.exit(main(sys.argv[2:]))
"""

#: Never in the sidecar process: the TUI's and the CLI's dependencies.
NEVER = ("textual", "rich", "kubernetes", "tui", "psutil", "yaml")
#: Not loaded until an RPC needs them.
NOT_AT_IDLE = (
    "argparse",
    "tomllib",
    "hmac",  # auth's digests load with the first call to check (hashlib: see agent._pod too)
    "http.client",
    "email",
    "grpc_reflection.v1alpha",  # (grpc itself imports the empty grpc_reflection package)
    "google.protobuf.descriptor_pb2",
    "agent._net",
    "agent._net_sockets",
    "agent._probe",
    "agent._proc",
    "agent._fs",
    "agent.results.net",
    "agent.results.proc",
    "protos.info_pb2",
    "protos.processes_pb2",
    "protos.files_pb2",
    "protos.network_pb2",
    "protos.logs_pb2",
    "sidecar.services.info",
    "sidecar.services.processes",
    "sidecar.services.files",
    "sidecar.services.network",
    "sidecar.services.logs",
)


class Served:
    """The sidecar subprocess, its address and token; ``modules()`` asks it what it loaded."""

    def __init__(self, p: subprocess.Popen[bytes], address: str, token: str, out: Path):
        self.p, self.address, self.token, self._out = p, address, token, out

    def modules(self) -> set[str]:
        self._out.unlink(missing_ok=True)
        os.kill(self.p.pid, signal.SIGUSR1)
        deadline = time.monotonic() + 10
        while not self._out.exists():
            assert time.monotonic() < deadline, "the sidecar did not answer SIGUSR1"
            time.sleep(0.02)
        return set(json.loads(self._out.read_text()))


@pytest.fixture
def served(app_process: subprocess.Popen[bytes], tmp_path: Path) -> Iterator[Served]:
    token, digest = new_token()
    out = tmp_path / "modules.json"
    env = {**os.environ, "BORESCOPE_TOKEN_SHA256": digest}
    argv = [sys.executable, "-c", SCRIPT, str(out), "serve", "--listen", "127.0.0.1:0"]
    for kv in (f"local_root={app_process.pid}", "recorder_interval_s=2", "reflection=true"):
        argv += ["--set", kv]
    p = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert p.stdout is not None
    address = ""
    for line in p.stdout:
        if line.startswith(b"listening on "):
            address = line.decode().split()[-1]
            break
    assert address, f"the sidecar did not start (exit {p.wait()})"
    try:
        yield Served(p, address, token, out)
    finally:
        p.terminate()
        p.wait(10)


def test_idle_sidecar_holds_no_heavy_or_per_rpc_modules(served: Served) -> None:
    """After start-up only what idling needs is loaded (the recorder, Events, health...)."""
    time.sleep(2.5)  # one recorder sample
    loaded = served.modules()
    assert {"agent._recorder", "sidecar.services.events", "protos.events_pb2"} <= loaded
    never = sorted(m for m in loaded if m.split(".")[0] in NEVER)
    assert not never, f"the sidecar imported {never}"
    early = sorted(m for m in NOT_AT_IDLE if m in loaded)
    assert not early, f"loaded before any RPC needed them: {early}"


def test_every_service_answers_its_first_call_and_loads_then(served: Served) -> None:
    """Each lazily registered service (and reflection) serves its first call."""
    md = (("authorization", f"Bearer {served.token}"),)
    app = common_pb2.ContainerSelector()
    with grpc.insecure_channel(served.address) as ch:
        info = info_pb2_grpc.InfoStub(ch).GetInfo(
            info_pb2.GetInfoRequest(), metadata=md, timeout=10
        )
        assert info.containers
        procs = processes_pb2_grpc.ProcessesStub(ch).ListProcesses(
            processes_pb2.ListProcessesRequest(container=app), metadata=md, timeout=10
        )
        assert procs.processes
        st = files_pb2_grpc.FilesStub(ch).Stat(
            files_pb2.StatRequest(container=app, path="/"), metadata=md, timeout=10
        )
        assert st.path == "/"
        ifs = network_pb2_grpc.NetworkStub(ch).ListInterfaces(
            network_pb2.ListInterfacesRequest(), metadata=md, timeout=10
        )
        assert any(i.name == "lo" for i in ifs.interfaces)
        logs_pb2_grpc.LogsStub(ch).ListSources(
            logs_pb2.ListSourcesRequest(container=app), metadata=md, timeout=10
        )
        replies = list(
            reflection_pb2_grpc.ServerReflectionStub(ch).ServerReflectionInfo(
                iter([reflection_pb2.ServerReflectionRequest(list_services="")]),
                metadata=md,
                timeout=10,
            )
        )
    listed = {s.name for s in replies[0].list_services_response.service}
    assert {n for names in SERVICES.values() for n in names} <= listed
    assert {reflection.SERVICE_NAME, "grpc.health.v1.Health"} <= listed
    loaded = served.modules()
    for mod in ("info", "processes", "files", "network", "logs"):
        assert f"sidecar.services.{mod}" in loaded
    assert "grpc_reflection.v1alpha.reflection" in loaded
    assert not sorted(m for m in loaded if m.split(".")[0] in NEVER)
