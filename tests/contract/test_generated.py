"""The committed generated modules match the .proto files exactly."""

from __future__ import annotations

import filecmp
from pathlib import Path

import pytest

from protos.generate import ROOT, generate, proto_files


def test_generated_modules_have_no_drift(tmp_path: Path) -> None:
    """Regenerating every .proto yields byte-identical committed modules."""
    pytest.importorskip("grpc_tools")
    generate(tmp_path)
    fresh = sorted(p.name for p in (tmp_path / "protos").iterdir() if "_pb2" in p.name)
    committed = sorted(p.name for p in (ROOT / "protos").iterdir() if "_pb2" in p.name)
    assert fresh == committed, "generated file set differs: run python -m protos.generate"
    for name in fresh:
        assert filecmp.cmp(tmp_path / "protos" / name, ROOT / "protos" / name, shallow=False), (
            f"protos/{name} is stale: run python -m protos.generate"
        )
    assert len(proto_files()) >= 7


def test_every_service_is_in_package_borescope_v1() -> None:
    """Info, Processes, Files, Network, Logs and Events exist in borescope.v1."""
    from protos import events_pb2, files_pb2, info_pb2, logs_pb2, network_pb2, processes_pb2

    found = set()
    for mod in (info_pb2, processes_pb2, files_pb2, network_pb2, logs_pb2, events_pb2):
        assert mod.DESCRIPTOR.package == "borescope.v1"
        found |= set(mod.DESCRIPTOR.services_by_name)
    assert found == {"Info", "Processes", "Files", "Network", "Logs", "Events"}
