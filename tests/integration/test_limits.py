"""Request limits: calls in flight, message size, default deadline, stream age, health capacity."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from protos import events_pb2, info_pb2
from sidecar.config import Config
from tests.conftest import Probe, Running, probe_call, start_probe_sidecar

SERVING = health_pb2.HealthCheckResponse.SERVING


@pytest.fixture
def probe() -> Iterator[Probe]:
    p = Probe()
    yield p
    p.release.set()


def stop(r: Running) -> None:
    r.client.close()
    r.sidecar.stop(0)


def open_blocking_stream(r: Running) -> Iterator[bytes]:
    """A ServerStream call that sends one batch then blocks server-side."""
    call = r.client.channel.unary_stream("/borescope.test.Probe/ServerStream")
    it: Iterator[bytes] = call(b"events:1:block", metadata=r.client.metadata, timeout=30)
    next(it)
    return it


def health_status(channel: grpc.Channel) -> int:
    stub = health_pb2_grpc.HealthStub(channel)
    return int(stub.Check(health_pb2.HealthCheckRequest(), timeout=5).status)


def test_the_n_plus_first_concurrent_stream_is_refused_and_health_still_answers(
    probe: Probe,
) -> None:
    """With max_concurrent_rpcs=3 and three streams open, a fourth stream and a unary call
    get RESOURCE_EXHAUSTED naming the switch, while health (main port and health port)
    still answers SERVING; once a stream ends its slot is free again."""
    r = start_probe_sidecar(Config(max_concurrent_rpcs=3, health_listen="127.0.0.1:0"), probe)
    try:
        streams = [open_blocking_stream(r) for _ in range(3)]
        with pytest.raises(grpc.RpcError) as e:
            probe_call(r, "ServerStream", b"events:1")
        assert e.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "max_concurrent_rpcs" in (e.value.details() or "")
        with pytest.raises(grpc.RpcError) as e:
            r.client.info.GetInfo(info_pb2.GetInfoRequest(), metadata=r.client.metadata, timeout=5)
        assert e.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert health_status(r.client.channel) == SERVING
        with grpc.insecure_channel(f"127.0.0.1:{r.sidecar.health_port}") as hc:
            assert health_status(hc) == SERVING
        streams[0].cancel()  # type: ignore[attr-defined]
        deadline = time.monotonic() + 5
        while True:
            try:
                r.client.info.GetInfo(
                    info_pb2.GetInfoRequest(), metadata=r.client.metadata, timeout=5
                )
                break
            except grpc.RpcError as err:
                assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
                assert time.monotonic() < deadline, "the slot was never released"
                time.sleep(0.05)
    finally:
        probe.release.set()
        stop(r)


def test_health_port_serves_health_and_nothing_else(probe: Probe) -> None:
    """The plaintext health port answers health without credentials and has no other service."""
    r = start_probe_sidecar(Config(health_listen="127.0.0.1:0"), probe)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{r.sidecar.health_port}") as hc:
            assert health_status(hc) == SERVING
            with pytest.raises(grpc.RpcError) as e:
                hc.unary_unary("/borescope.v1.Info/GetInfo")(
                    b"", metadata=r.client.metadata, timeout=5
                )
            assert e.value.code() == grpc.StatusCode.UNIMPLEMENTED
    finally:
        stop(r)


def test_an_oversized_request_is_refused_before_the_servicer(probe: Probe) -> None:
    """A request above max_message_bytes is refused RESOURCE_EXHAUSTED and never runs."""
    r = start_probe_sidecar(Config(max_message_bytes=64 << 10), probe)
    try:
        with pytest.raises(grpc.RpcError) as e:
            probe_call(r, "Unary", b"x" * (100 << 10))
        assert e.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert not probe.entered.acquire(timeout=0.2)
        assert probe_call(r, "Unary", b"ok")  # the connection is still usable
    finally:
        stop(r)


def test_a_unary_call_without_a_deadline_still_ends(probe: Probe) -> None:
    """A call sent with no deadline that would block forever is answered DEADLINE_EXCEEDED
    after default_deadline_s, with a message naming the switch; its slot comes back once
    the work notices the call is over."""
    r = start_probe_sidecar(Config(default_deadline_s=0.5, max_concurrent_rpcs=2), probe)
    try:
        t0 = time.monotonic()
        with pytest.raises(grpc.RpcError) as e:
            probe_call(r, "Unary", b"block", timeout=None)
        took = time.monotonic() - t0
        assert e.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert "default_deadline_s" in (e.value.details() or "")
        assert 0.4 < took < 5
        assert probe.finished.acquire(timeout=5)  # the abandoned work stopped
        for _ in range(4):  # both slots are free again
            assert probe_call(r, "Unary", b"ok", timeout=None)
    finally:
        stop(r)


def test_a_client_deadline_is_honoured_without_the_helper_thread(probe: Probe) -> None:
    """A call with its own short deadline ends at that deadline, not the default one."""
    r = start_probe_sidecar(Config(default_deadline_s=30), probe)
    try:
        t0 = time.monotonic()
        with pytest.raises(grpc.RpcError) as e:
            probe_call(r, "Unary", b"block", timeout=0.3)
        assert e.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert time.monotonic() - t0 < 3
    finally:
        stop(r)


def collect_until_end(it: Iterator[bytes], pause: float = 0.0) -> tuple[list[str], grpc.RpcError]:
    """Cursors of every batch received, and the error that ended the stream."""
    got: list[str] = []
    try:
        for raw in it:
            got.append(events_pb2.EventBatch.FromString(raw).cursor)
            if pause:
                time.sleep(pause)  # a slow reader
    except grpc.RpcError as e:
        return got, e
    raise AssertionError("the stream ended without an error")


def trailer_cursor(err: grpc.RpcError) -> str:
    """The single-cursor stream's trailer: the bare cursor, as the Events servicer sends it."""
    md = dict(err.trailing_metadata() or ())  # type: ignore[attr-defined]
    return str(md["borescope-cursor"])


def test_a_stream_past_its_maximum_age_ends_with_its_cursor(probe: Probe) -> None:
    """A stream older than max_stream_age_s ends UNAVAILABLE; the trailer cursor is the
    cursor of the last batch the client received, so resuming from it loses nothing."""
    r = start_probe_sidecar(Config(max_stream_age_s=0.3), probe)
    try:
        call = r.client.channel.unary_stream("/borescope.test.Probe/ServerStream")
        got, err = collect_until_end(call(b"events:100000", metadata=r.client.metadata, timeout=30))
        assert err.code() == grpc.StatusCode.UNAVAILABLE
        assert "max_stream_age_s" in (err.details() or "")
        assert 1 <= len(got) < 100000
        assert trailer_cursor(err) == got[-1]
        assert got == [f"c{i}" for i in range(1, len(got) + 1)]  # none skipped
    finally:
        stop(r)


def test_streams_end_with_their_cursor_when_the_sidecar_stops(probe: Probe) -> None:
    """On graceful stop a live stream ends UNAVAILABLE after its current batch with the
    cursor of the last batch received in trailers; new streams are refused."""
    r = start_probe_sidecar(Config(), probe)
    try:
        call = r.client.channel.unary_stream("/borescope.test.Probe/ServerStream")
        it = call(b"events:100000", metadata=r.client.metadata, timeout=30)
        first = events_pb2.EventBatch.FromString(next(it)).cursor
        stopper = threading.Thread(target=r.sidecar.stop, args=(5,))
        stopper.start()
        got, err = collect_until_end(it)
        stopper.join()
        assert err.code() == grpc.StatusCode.UNAVAILABLE
        assert "shutting down" in (err.details() or "")
        assert trailer_cursor(err) == (got or [first])[-1]
        assert [first, *got] == [f"c{i}" for i in range(1, len(got) + 2)]  # none skipped
    finally:
        r.client.close()


def test_a_quiet_stream_also_ends_at_its_maximum_age(probe: Probe) -> None:
    """A stream with nothing more to send (blocked waiting for data) still ends at
    max_stream_age_s, UNAVAILABLE with the cursor of its last batch in trailers."""
    r = start_probe_sidecar(Config(max_stream_age_s=0.5), probe)
    try:
        call = r.client.channel.unary_stream("/borescope.test.Probe/ServerStream")
        t0 = time.monotonic()
        got, err = collect_until_end(
            call(b"events:2:block", metadata=r.client.metadata, timeout=30)
        )
        assert 0.4 < time.monotonic() - t0 < 5
        assert err.code() == grpc.StatusCode.UNAVAILABLE
        assert "max_stream_age_s" in (err.details() or "")
        assert got == ["c1", "c2"]
        assert trailer_cursor(err) == "c2"
    finally:
        stop(r)


def test_a_client_pinging_too_often_is_sent_away(probe: Probe) -> None:
    """The ping policy: a client sending keepalive pings far more often than
    min_client_ping_interval_s gets GOAWAY (too_many_pings) and its stream ends, so a
    misbehaving client cannot keep the server busy with pings."""
    r = start_probe_sidecar(Config(min_client_ping_interval_s=5), probe)
    opts = [
        ("grpc.keepalive_time_ms", 100),
        ("grpc.keepalive_timeout_ms", 1000),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.max_pings_without_data", 0),
    ]
    try:
        with grpc.insecure_channel(r.address, options=opts) as ch:
            call = ch.unary_stream("/borescope.test.Probe/ServerStream")
            it = call(b"events:1:block", metadata=r.client.metadata, timeout=20)
            t0 = time.monotonic()
            with pytest.raises(grpc.RpcError) as e:
                list(it)
            assert e.value.code() == grpc.StatusCode.UNAVAILABLE
            assert "ping" in (e.value.details() or "").lower()
            assert time.monotonic() - t0 < 10
    finally:
        probe.release.set()
        stop(r)
