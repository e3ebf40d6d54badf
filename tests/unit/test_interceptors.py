"""The interceptor chain (audit, auth, limits, errors) for every RPC kind, over a real channel."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from sidecar.config import Config
from tests.conftest import (
    PROBE_CANARY,
    PROBE_KINDS,
    Probe,
    Running,
    probe_call,
    start_probe_sidecar,
)


def records(path: Path, event: str = "rpc") -> list[dict[str, object]]:
    """The audit file's records of one kind."""
    lines = path.read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["event"] == event]


@pytest.fixture
def probe_sidecar(tmp_path: Path) -> Iterator[tuple[Running, Probe, Path]]:
    probe = Probe()
    audit_file = tmp_path / "audit.jsonl"
    r = start_probe_sidecar(Config(audit_file=str(audit_file)), probe)
    yield r, probe, audit_file
    probe.release.set()
    r.client.close()
    r.sidecar.stop(0)


@pytest.mark.parametrize("kind", PROBE_KINDS)
def test_every_kind_with_token_passes_and_is_audited_once(
    probe_sidecar: tuple[Running, Probe, Path], kind: str
) -> None:
    """A call of each RPC kind with the token succeeds and yields exactly one `rpc`
    record with identity, method, noted object, outcome, bytes and duration."""
    r, _probe, audit_file = probe_sidecar
    out = probe_call(r, kind, b"note")
    assert out
    recs = records(audit_file)
    assert len(recs) == 1
    rec = recs[0]
    assert rec["method"] == f"/borescope.test.Probe/{kind}"
    assert rec["identity"] == "token:" + r.config.token_sha256[:8]
    assert rec["object"] == {
        "container": "app",
        "pid": 1,
        "start_ticks": 42,
        "path": "/etc/resolved",
    }
    assert rec["code"] == "OK"
    assert rec["bytes"] > 0 and rec["messages"] >= 1
    assert isinstance(rec["duration_ms"], float)
    assert len(records(audit_file, "rpc.begin")) == 1
    assert records(audit_file, "rpc.begin")[0]["audit_id"] == rec["audit_id"]


@pytest.mark.parametrize("kind", PROBE_KINDS)
def test_every_kind_without_or_with_wrong_token_is_unauthenticated(
    probe_sidecar: tuple[Running, Probe, Path], kind: str
) -> None:
    """Each RPC kind is refused UNAUTHENTICATED without a token and with a wrong one, the
    servicer never runs, and the refusal is audited as anonymous."""
    r, probe, audit_file = probe_sidecar
    for md in ((), (("authorization", "Bearer not-the-token"),), (("authorization", "x"),)):
        with pytest.raises(grpc.RpcError) as e:
            probe_call(r, kind, b"ok", metadata=md)
        assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert not probe.entered.acquire(timeout=0)
    recs = records(audit_file)
    assert [x["code"] for x in recs] == ["UNAUTHENTICATED"] * 3
    assert {x["identity"] for x in recs} == {"anonymous"}


def test_identity_does_not_leak_to_the_next_call_on_a_reused_thread(
    probe_sidecar: tuple[Running, Probe, Path],
) -> None:
    """After many authenticated calls, an unauthenticated one is still recorded as
    anonymous (pool threads keep their contextvars between calls)."""
    r, _probe, audit_file = probe_sidecar
    for _ in range(20):
        probe_call(r, "Unary")
    for _ in range(20):
        with pytest.raises(grpc.RpcError):
            probe_call(r, "Unary", metadata=())
    recs = records(audit_file)
    assert all(x["identity"] == "anonymous" for x in recs if x["code"] == "UNAUTHENTICATED")
    assert all(x["object"] == {} for x in recs)


@pytest.mark.parametrize("kind", PROBE_KINDS)
def test_agent_errors_map_to_codes_and_bugs_to_internal_for_every_kind(
    probe_sidecar: tuple[Running, Probe, Path], kind: str
) -> None:
    """NotFound becomes NOT_FOUND with its message; an unexpected exception becomes
    INTERNAL without its text reaching the client; both are audited with their code."""
    r, _probe, audit_file = probe_sidecar
    with pytest.raises(grpc.RpcError) as e:
        probe_call(r, kind, b"notfound")
    assert e.value.code() == grpc.StatusCode.NOT_FOUND
    assert "no such thing" in (e.value.details() or "")
    with pytest.raises(grpc.RpcError) as e:
        probe_call(r, kind, b"crash")
    assert e.value.code() == grpc.StatusCode.INTERNAL
    assert "secret internal detail" not in (e.value.details() or "")
    assert [x["code"] for x in records(audit_file)] == ["NOT_FOUND", "INTERNAL"]


def test_audit_record_never_carries_content(probe_sidecar: tuple[Running, Probe, Path]) -> None:
    """The canary the service returns appears in no audit line, for any kind."""
    r, _probe, audit_file = probe_sidecar
    for kind in PROBE_KINDS:
        probe_call(r, kind, b"ok")
    text = audit_file.read_text()
    assert PROBE_CANARY.decode() not in text
    assert len(records(audit_file)) == len(PROBE_KINDS)


def test_audit_id_is_sent_to_the_client(probe_sidecar: tuple[Running, Probe, Path]) -> None:
    """The client receives the call's audit id in initial metadata, matching the record."""
    r, _probe, audit_file = probe_sidecar
    call = r.client.channel.unary_unary("/borescope.test.Probe/Unary")
    _resp, c = call.with_call(b"ok", metadata=r.client.metadata, timeout=5)
    sent = dict(c.initial_metadata())["borescope-audit-id"]
    assert records(audit_file)[0]["audit_id"] == sent


def test_health_needs_no_token(probe_sidecar: tuple[Running, Probe, Path]) -> None:
    """grpc.health.v1 answers SERVING without any metadata."""
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    r, _probe, _ = probe_sidecar
    stub = health_pb2_grpc.HealthStub(r.client.channel)
    resp = stub.Check(health_pb2.HealthCheckRequest(), timeout=5)
    assert resp.status == health_pb2.HealthCheckResponse.SERVING


def test_trailer_cursor_forms_match_the_servicers() -> None:
    """Multi-source streams get a JSON map seeded by the request's cursors and updated by
    each batch; single-cursor streams get the bare cursor (as the Events servicer sends)."""
    from protos import events_pb2, logs_pb2
    from sidecar.interceptors.limits import track_cursor, trailer_value

    cursors: dict[str, str] = {}
    track_cursor(cursors, logs_pb2.FollowLogsRequest(cursors={"a": "a1", "quiet": "q7"}))
    track_cursor(cursors, logs_pb2.LogBatch(cursors={"a": "a2", "b": "b1"}))
    assert json.loads(trailer_value(cursors)) == {"a": "a2", "quiet": "q7", "b": "b1"}
    single: dict[str, str] = {}
    track_cursor(single, events_pb2.FollowEventsRequest(cursor="e1"))
    track_cursor(single, events_pb2.EventBatch(cursor="e9"))
    assert trailer_value(single) == "e9"


def test_audit_args_never_carry_url_credentials_or_queries() -> None:
    """A probe URL's userinfo, query and fragment never reach the audit record."""
    from protos import network_pb2
    from sidecar.interceptors.audit import summarize

    req = network_pb2.ProbeHttpRequest(
        url="https://user:hunter2@db.internal:8443/p?token=s3cret#frag"
    )
    args = summarize(req)
    assert args["url"] == "https://db.internal:8443/p?<redacted>"
    assert "hunter2" not in str(args) and "s3cret" not in str(args)
