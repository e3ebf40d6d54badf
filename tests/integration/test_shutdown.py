"""Graceful shutdown: health turns NOT_SERVING, streams end with resume cursors, SIGTERM
loses nothing across a sidecar restart."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from protos import logs_pb2
from sidecar.config import Config
from tests.conftest import ROOT, Probe, new_token, probe_call, start_probe_sidecar
from tui.client import Client, Target

NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def test_health_turns_not_serving_while_streams_drain() -> None:
    """During the grace period health (main and health port) answers NOT_SERVING, and new
    calls are refused, while an existing stream is still draining."""
    probe = Probe()
    r = start_probe_sidecar(Config(health_listen="127.0.0.1:0"), probe)
    try:
        call = r.client.channel.unary_stream("/borescope.test.Probe/ServerStream")
        it = call(b"events:1:block", metadata=r.client.metadata, timeout=30)
        next(it)
        stopper = threading.Thread(target=r.sidecar.stop, args=(3,))
        stopper.start()
        with grpc.insecure_channel(f"127.0.0.1:{r.sidecar.health_port}") as hc:
            stub = health_pb2_grpc.HealthStub(hc)
            deadline = time.monotonic() + 2
            status = None
            while time.monotonic() < deadline:
                status = stub.Check(health_pb2.HealthCheckRequest(), timeout=2).status
                if status == NOT_SERVING:
                    break
                time.sleep(0.02)
            assert status == NOT_SERVING
        with pytest.raises(grpc.RpcError) as e:
            probe_call(r, "ServerStream", b"events:1")
        assert e.value.code() == grpc.StatusCode.UNAVAILABLE
        assert stopper.is_alive()  # still draining the blocked stream
        probe.release.set()
        stopper.join(10)
    finally:
        probe.release.set()
        r.client.close()


# --- SIGTERM of a real `python -m sidecar serve`, resumed from the trailer cursor -----------


def spawn_sidecar(log_file: Path, app_pid: int, digest: str) -> tuple[subprocess.Popen[bytes], str]:
    env = {"PATH": os.environ["PATH"], "BORESCOPE_TOKEN_SHA256": digest}
    p = subprocess.Popen(
        [sys.executable, "-m", "sidecar", "serve", "--listen", "127.0.0.1:0",
         "--set", f"local_root={app_pid}", "--set", f"log_sources={log_file}"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    assert p.stdout is not None
    for line in p.stdout:
        if line.startswith(b"listening on "):
            threading.Thread(target=p.stdout.read, daemon=True).start()  # keep draining audit
            return p, line.decode().split()[-1]
    raise AssertionError(f"sidecar did not start: {p.communicate()[1]!r}")


WRITER = r"""
import sys, time
path, n = sys.argv[1], int(sys.argv[2])
with open(path, "a", buffering=1) as f:
    for i in range(1, n + 1):
        f.write(f"line {i}\n")
        time.sleep(0.002)
time.sleep(300)
"""


@pytest.fixture
def writer(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], Path, int]]:
    """The app: writes ``line 1..N`` to its log file, then idles."""
    n = 1500
    log_file = tmp_path / "app.log"
    log_file.touch()
    p = subprocess.Popen([sys.executable, "-c", WRITER, str(log_file), str(n)])
    yield p, log_file, n
    p.kill()
    p.wait()


def lines_of(batch: logs_pb2.LogBatch) -> list[str]:
    return [r.raw or r.message for r in batch.records if r.kind == logs_pb2.RECORD_KIND_LINE]


def follow_request(
    c: Client, log_file: Path, cursors: dict[str, str]
) -> logs_pb2.FollowLogsRequest:
    """Follow only the app's log file (local mode also finds the host's /var/log)."""
    sources = c.logs.ListSources(logs_pb2.ListSourcesRequest(), metadata=c.metadata, timeout=10)
    ids = [s.id for s in sources.sources if s.path == str(log_file)]
    assert ids, [s.path for s in sources.sources]
    return logs_pb2.FollowLogsRequest(
        start_at=logs_pb2.START_AT_BEGINNING,
        follow=True,
        cursors=cursors,
        filter=logs_pb2.LogFilter(source_ids=ids),
    )


def test_sigterm_ends_the_stream_with_cursors_and_a_resume_loses_nothing(
    writer: tuple[subprocess.Popen[bytes], Path, int],
) -> None:
    """SIGTERM mid-stream: FollowLogs ends UNAVAILABLE with cursors in trailer
    borescope-cursor; a new sidecar resumed with them delivers every remaining line, so
    the client sees line 1..N exactly once, in order."""
    app, log_file, n = writer
    token, digest = new_token()
    side, address = spawn_sidecar(log_file, app.pid, digest)
    seen: list[str] = []
    try:
        with Client(Target(address, token)) as c:
            it = c.logs.FollowLogs(
                follow_request(c, log_file, {}),
                metadata=c.metadata,
                timeout=60,
            )
            with pytest.raises(grpc.RpcError) as e:
                for batch in it:
                    seen += lines_of(batch)
                    if len(seen) >= 200 and side.returncode is None and not side.poll():
                        side.send_signal(signal.SIGTERM)
            assert e.value.code() == grpc.StatusCode.UNAVAILABLE
            trailer = dict(e.value.trailing_metadata() or ())  # type: ignore[attr-defined]
            cursors = json.loads(trailer["borescope-cursor"])
            assert cursors
        assert side.wait(15) == 0
        assert 200 <= len(seen) < n  # the restart really had lines left to deliver
        side2, address2 = spawn_sidecar(log_file, app.pid, digest)
        try:
            with Client(Target(address2, token)) as c:
                it = c.logs.FollowLogs(
                    follow_request(c, log_file, cursors),
                    metadata=c.metadata,
                    timeout=60,
                )
                for batch in it:
                    seen += lines_of(batch)
                    if seen and seen[-1] == f"line {n}":
                        it.cancel()
                        break
        finally:
            side2.terminate()
            side2.wait(15)
    finally:
        if side.poll() is None:
            side.kill()
            side.wait()
    assert seen == [f"line {i}" for i in range(1, n + 1)]
