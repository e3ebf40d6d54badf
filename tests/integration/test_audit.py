"""Audit: one record per RPC, no content, and fail closed when the sink breaks."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from protos import info_pb2
from sidecar.config import Config
from sidecar.server import build
from tests.conftest import PROBE_CANARY, Probe, Running, probe_call, start_probe_sidecar


class FifoReader:
    """The reading end of a FIFO audit sink, drained by a thread, closable at will."""

    def __init__(self, path: Path) -> None:
        os.mkfifo(path)
        self.fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        self.data = bytearray()
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._drain, daemon=True)
        self._t.start()

    def _drain(self) -> None:
        while not self._stop.is_set():
            try:
                chunk = os.read(self.fd, 65536)
            except BlockingIOError:
                self._stop.wait(0.01)
                continue
            except OSError:
                return
            if chunk:
                self.data += chunk
            else:
                self._stop.wait(0.01)

    def close(self) -> None:
        self._stop.set()
        self._t.join()
        os.close(self.fd)

    def records(self) -> list[dict[str, object]]:
        return [json.loads(x) for x in bytes(self.data).decode().splitlines()]


@pytest.fixture
def fifo_sidecar(tmp_path: Path) -> Iterator[tuple[Running, Probe, FifoReader]]:
    reader = FifoReader(tmp_path / "audit.fifo")
    probe = Probe()
    r = start_probe_sidecar(Config(audit_file=str(tmp_path / "audit.fifo")), probe)
    yield r, probe, reader
    probe.release.set()
    r.client.close()
    r.sidecar.stop(0)
    if reader.fd >= 0:
        reader.close()


def info(r: Running) -> info_pb2.GetInfoResponse:
    resp: info_pb2.GetInfoResponse = r.client.info.GetInfo(
        info_pb2.GetInfoRequest(), metadata=r.client.metadata, timeout=5
    )
    return resp


def test_requests_are_refused_once_the_audit_sink_fails(
    fifo_sidecar: tuple[Running, Probe, FifoReader],
) -> None:
    """While the sink works calls succeed and are recorded; once its reader is gone every
    call (real service or probe) is refused UNAVAILABLE naming the audit sink, and the
    servicer never runs."""
    r, probe, reader = fifo_sidecar
    info(r)
    probe_call(r, "Unary")
    assert probe.entered.acquire(timeout=1)
    reader.close()
    reader.fd = -1
    for call in (lambda: info(r), lambda: probe_call(r, "Unary"), lambda: probe_call(r, "Bidi")):
        with pytest.raises(grpc.RpcError) as e:
            call()
        assert e.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "audit" in (e.value.details() or "")
    assert not probe.entered.acquire(timeout=0.2)
    # Health still answers, and says the sidecar is no longer serving (kubelet restarts it).
    stub = health_pb2_grpc.HealthStub(r.client.channel)
    status = stub.Check(health_pb2.HealthCheckRequest(), timeout=5).status
    assert status == health_pb2.HealthCheckResponse.NOT_SERVING


def test_a_unary_answer_is_withheld_when_its_record_cannot_be_written(
    fifo_sidecar: tuple[Running, Probe, FifoReader],
) -> None:
    """If the sink fails while a unary call runs, the client gets UNAVAILABLE, not the
    answer (an unaudited answer is never delivered)."""
    r, probe, reader = fifo_sidecar
    result: list[object] = []

    def call() -> None:
        try:
            result.append(probe_call(r, "Unary", b"block"))
        except grpc.RpcError as e:
            result.append(e)

    t = threading.Thread(target=call)
    t.start()
    assert probe.entered.acquire(timeout=5)  # the begin record went through
    reader.close()
    reader.fd = -1
    probe.release.set()
    t.join(10)
    assert isinstance(result[0], grpc.RpcError)
    assert result[0].code() == grpc.StatusCode.UNAVAILABLE
    assert PROBE_CANARY not in repr(result[0]).encode()


def test_a_sink_that_cannot_be_opened_stops_the_start(tmp_path: Path) -> None:
    """A FIFO with no reader (or an unwritable path) makes build() fail, naming audit_file."""
    os.mkfifo(tmp_path / "nobody-reads")
    for path in (tmp_path / "nobody-reads", tmp_path / "no" / "such" / "dir"):
        with pytest.raises(RuntimeError, match="audit_file"):
            build("127.0.0.1:0", Config(insecure_no_auth=True, audit_file=str(path)))


def test_one_record_per_rpc_with_identity_and_timing(
    fifo_sidecar: tuple[Running, Probe, FifoReader],
) -> None:
    """N calls produce N `rpc` records (plus N begin records) with distinct audit ids."""
    r, _probe, reader = fifo_sidecar
    for _ in range(5):
        info(r)
    with pytest.raises(grpc.RpcError):
        r.client.info.GetInfo(info_pb2.GetInfoRequest(), timeout=5)  # no token
    deadline = 50
    while len([x for x in reader.records() if x["event"] == "rpc"]) < 6 and deadline:
        threading.Event().wait(0.02)
        deadline -= 1
    recs = [x for x in reader.records() if x["event"] == "rpc"]
    assert len(recs) == 6
    assert len({x["audit_id"] for x in recs}) == 6
    assert [x["code"] for x in recs] == ["OK"] * 5 + ["UNAUTHENTICATED"]
    assert recs[0]["identity"] == "token:" + r.config.token_sha256[:8]
    assert all(x["method"] == "/borescope.v1.Info/GetInfo" for x in recs)
    assert all(float(x["duration_ms"]) >= 0 for x in recs)  # type: ignore[arg-type]


def test_health_checks_are_not_audited_unless_asked(tmp_path: Path) -> None:
    """Periodic health checks leave no audit records by default; audit_health=true
    records them like any call."""
    for audit_health, expected in ((False, 0), (True, 3)):
        audit_file = tmp_path / f"audit-{audit_health}.jsonl"
        r = start_probe_sidecar(
            Config(audit_file=str(audit_file), audit_health=audit_health), Probe()
        )
        try:
            stub = health_pb2_grpc.HealthStub(r.client.channel)
            for _ in range(3):
                stub.Check(health_pb2.HealthCheckRequest(), timeout=5)
            info(r)
        finally:
            r.client.close()
            r.sidecar.stop(0)
        recs = [json.loads(x) for x in audit_file.read_text().splitlines()]
        done = [x for x in recs if x["event"] == "rpc"]
        assert len([x for x in done if "Health" in x["method"]]) == expected
        assert len([x for x in done if x["method"].endswith("GetInfo")]) == 1
