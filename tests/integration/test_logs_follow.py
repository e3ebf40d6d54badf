"""FollowLogs over a real gRPC channel: exactly once across killed connections,
shutdown cursors, lost cursors, filters, CRI sources, rotation through the RPC.

The sidecar runs in local mode (the app is a real child process); log files are
real files named in ``log_sources``/``stdio_logs``. Killed connections go
through a loopback TCP proxy the test controls.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from protos import common_pb2, logs_pb2, logs_pb2_grpc
from sidecar.config import Config
from tests.conftest import Running, start_sidecar


class Proxy:
    """A loopback TCP proxy whose connections the test can cut at any moment."""

    def __init__(self, target_port: int) -> None:
        self.target = ("127.0.0.1", target_port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.conns: list[socket.socket] = []
        self.lock = threading.Lock()
        self.kills = 0
        self._stop = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._stop:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            with self.lock:
                self.conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass  # the test cut this connection
        for s in (src, dst):
            with contextlib.suppress(OSError):  # already shut by the other direction
                s.shutdown(socket.SHUT_RDWR)

    def kill(self) -> None:
        """Cut every open connection: shutdown wakes the pump threads blocked in recv
        (a bare close() from another thread would not end the TCP connection), and
        SO_LINGER 0 makes the final close an RST."""
        with self.lock:
            conns, self.conns = self.conns, []
        for s in conns:
            with contextlib.suppress(OSError):
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                s.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                s.close()
        self.kills += 1

    def close(self) -> None:
        self._stop = True
        self.listener.close()
        self.kill()


@pytest.fixture
def app() -> Iterator[subprocess.Popen[bytes]]:
    p = subprocess.Popen(["sleep", "300"])
    yield p
    p.kill()
    p.wait()


def _sidecar(app: subprocess.Popen[bytes], **cfg: object) -> Running:
    return start_sidecar(Config(local_root=app.pid, **cfg))  # type: ignore[arg-type]


def _source_id(r: Running, path: str) -> str:
    resp = r.client.logs.ListSources(
        logs_pb2.ListSourcesRequest(), metadata=r.client.metadata, timeout=10
    )
    return next(s.id for s in resp.sources if s.path == path)


def _text(rec: logs_pb2.Record) -> str:
    return rec.raw or rec.message


def test_exactly_once_across_ten_killed_connections(
    app: subprocess.Popen[bytes], tmp_path: Path
) -> None:
    """A writer appends 100,000 numbered lines; the client's TCP connection is cut 10 times
    mid-stream and it resumes from its cursors: every number arrives exactly once."""
    log = tmp_path / "app.log"
    log.touch()
    r = _sidecar(app, log_sources=(str(log),))
    sid = _source_id(r, str(log))
    proxy = Proxy(int(r.address.rsplit(":", 1)[1]))
    total = 100_000

    def writer() -> None:
        with log.open("ab", buffering=0) as w:
            for chunk in range(total // 500):
                w.write(b"".join(b"n=%d\n" % i for i in range(chunk * 500, chunk * 500 + 500)))
                time.sleep(0.01)

    wt = threading.Thread(target=writer)
    wt.start()
    channel = grpc.insecure_channel(
        f"127.0.0.1:{proxy.port}",
        options=[("grpc.initial_reconnect_backoff_ms", 50), ("grpc.max_reconnect_backoff_ms", 200)],
    )
    stub = logs_pb2_grpc.LogsStub(channel)
    seen: list[int] = []
    cursors: dict[str, str] = {}
    next_kill = total // 11
    errors = 0
    deadline = time.monotonic() + 90
    try:
        while len(seen) < total and time.monotonic() < deadline:
            req = logs_pb2.FollowLogsRequest(
                cursors=cursors,
                start_at=logs_pb2.START_AT_BEGINNING,
                follow=True,
                max_batch_records=700,
                detail=logs_pb2.DETAIL_BASIC,
                filter=logs_pb2.LogFilter(source_ids=[sid]),
            )
            try:
                for batch in stub.FollowLogs(req, metadata=r.client.metadata, timeout=60):
                    seen.extend(int(_text(x)[2:]) for x in batch.records)
                    cursors.update(batch.cursors)
                    if proxy.kills < 10 and len(seen) >= next_kill:
                        next_kill += total // 11
                        proxy.kill()  # mid-stream: the next batches are in flight
                    if len(seen) >= total:
                        break
            except grpc.RpcError as e:
                assert e.code() == grpc.StatusCode.UNAVAILABLE, e
                errors += 1
    finally:
        kills = proxy.kills
        wt.join()
        channel.close()
        proxy.close()
        r.client.close()
        r.sidecar.stop(0)
    assert kills == 10
    assert errors >= 10
    assert len(seen) == total, f"{len(seen)} records, {len(set(seen))} distinct"
    assert seen == list(range(total))


def test_graceful_shutdown_puts_cursors_in_trailer(
    app: subprocess.Popen[bytes], tmp_path: Path
) -> None:
    """Stopping the sidecar ends a follow with UNAVAILABLE and borescope-cursor; a new sidecar
    resumed from those cursors delivers the rest exactly once."""
    log = tmp_path / "app.log"
    log.write_bytes(b"".join(b"%d\n" % i for i in range(2000)))
    r = _sidecar(app, log_sources=(str(log),))
    sid = _source_id(r, str(log))
    got: list[int] = []
    req = logs_pb2.FollowLogsRequest(
        start_at=logs_pb2.START_AT_BEGINNING,
        follow=True,
        max_batch_records=100,
        filter=logs_pb2.LogFilter(source_ids=[sid]),
    )
    call = r.client.logs.FollowLogs(req, metadata=r.client.metadata, timeout=30)
    for batch in call:
        got.extend(int(_text(x)) for x in batch.records)
        if len(got) >= 500:
            break
    # Stop while the stream is open; the stream sees `stopping` and ends with cursors.
    stopper = threading.Thread(target=r.sidecar.stop, args=(2.0,))
    stopper.start()
    with pytest.raises(grpc.RpcError) as e:
        for batch in call:  # batches sent before the shutdown still arrive, in order
            got.extend(int(_text(x)) for x in batch.records)
    stopper.join()
    r.client.close()
    assert e.value.code() == grpc.StatusCode.UNAVAILABLE
    trailer = dict(e.value.trailing_metadata() or ())
    assert "borescope-cursor" in trailer, e.value.details()
    cursors = json.loads(trailer["borescope-cursor"])
    assert sid in cursors
    r2 = _sidecar(app, log_sources=(str(log),))
    try:
        for b in r2.client.logs.FollowLogs(
            logs_pb2.FollowLogsRequest(
                cursors=cursors, follow=False, filter=logs_pb2.LogFilter(source_ids=[sid])
            ),
            metadata=r2.client.metadata,
            timeout=30,
        ):
            got.extend(int(_text(x)) for x in b.records)
    finally:
        r2.client.close()
        r2.sidecar.stop(0)
    assert got == list(range(2000))


def test_lost_cursor_out_of_range_or_gap(app: subprocess.Popen[bytes], tmp_path: Path) -> None:
    """A cursor into a replaced file: OUT_OF_RANGE with the earliest cursor in the trailer,
    or with LOST_CURSOR_GAP a GAP record first and then the new content."""
    log = tmp_path / "app.log"
    log.write_bytes(b"old\n")
    r = _sidecar(app, log_sources=(str(log),))
    try:
        sid = _source_id(r, str(log))
        flt = logs_pb2.LogFilter(source_ids=[sid])
        batches = list(
            r.client.logs.FollowLogs(
                logs_pb2.FollowLogsRequest(start_at=logs_pb2.START_AT_BEGINNING, filter=flt),
                metadata=r.client.metadata,
                timeout=10,
            )
        )
        cursor = next(b.cursors[sid] for b in batches if sid in b.cursors)
        log.unlink()
        log.write_bytes(b"new\n")
        with pytest.raises(grpc.RpcError) as e:
            list(
                r.client.logs.FollowLogs(
                    logs_pb2.FollowLogsRequest(cursors={sid: cursor}, filter=flt),
                    metadata=r.client.metadata,
                    timeout=10,
                )
            )
        assert e.value.code() == grpc.StatusCode.OUT_OF_RANGE
        earliest = json.loads(dict(e.value.trailing_metadata())["borescope-earliest-cursor"])
        recs = [
            x
            for b in r.client.logs.FollowLogs(
                logs_pb2.FollowLogsRequest(cursors=earliest, filter=flt),
                metadata=r.client.metadata,
                timeout=10,
            )
            for x in b.records
        ]
        assert [_text(x) for x in recs] == ["new"]
        recs = [
            x
            for b in r.client.logs.FollowLogs(
                logs_pb2.FollowLogsRequest(
                    cursors={sid: cursor},
                    filter=flt,
                    on_lost_cursor=common_pb2.LOST_CURSOR_GAP,
                ),
                metadata=r.client.metadata,
                timeout=10,
            )
            for x in b.records
        ]
        assert recs[0].kind == logs_pb2.RECORD_KIND_GAP and "cursor lost" in recs[0].gap.reason
        assert [_text(x) for x in recs[1:]] == ["new"]
    finally:
        r.client.close()
        r.sidecar.stop(0)


def test_filters_batches_and_bad_requests(app: subprocess.Popen[bytes], tmp_path: Path) -> None:
    """Server-side regex, level >= and time filters; many records per message; a bad regex is
    INVALID_ARGUMENT and an unknown source NOT_FOUND."""
    log = tmp_path / "app.log"
    lines = []
    for i in range(300):
        lvl = ("info", "warn", "error")[i % 3]
        lines.append(
            json.dumps(
                {"time": f"2024-01-01T00:{i // 60:02d}:{i % 60:02d}Z", "level": lvl, "msg": f"m{i}"}
            )
        )
    log.write_text("\n".join(lines) + "\n")
    r = _sidecar(app, log_sources=(str(log),))
    md = r.client.metadata

    def run(flt: logs_pb2.LogFilter, **kw: object) -> list[logs_pb2.LogBatch]:
        flt.source_ids.append(sid)
        return list(
            r.client.logs.FollowLogs(
                logs_pb2.FollowLogsRequest(start_at=logs_pb2.START_AT_BEGINNING, filter=flt, **kw),  # type: ignore[arg-type]
                metadata=md,
                timeout=10,
            )
        )

    try:
        sid = _source_id(r, str(log))
        batches = run(logs_pb2.LogFilter())
        recs = [x for b in batches for x in b.records]
        assert len(recs) == 300 and max(len(b.records) for b in batches) > 100
        assert {x.level for x in recs} == {
            logs_pb2.LEVEL_INFO,
            logs_pb2.LEVEL_WARN,
            logs_pb2.LEVEL_ERROR,
        }
        errs = [
            x for b in run(logs_pb2.LogFilter(min_level=logs_pb2.LEVEL_ERROR)) for x in b.records
        ]
        assert [x.message for x in errs] == [f"m{i}" for i in range(2, 300, 3)]
        rx = [x for b in run(logs_pb2.LogFilter(regex=r'"m1\d"')) for x in b.records]
        assert [x.message for x in rx] == [f"m{i}" for i in range(10, 20)]
        since = 1704067200 + 60
        flt = logs_pb2.LogFilter()
        flt.time.since.seconds = since
        flt.time.until.seconds = since + 60
        timed = [x for b in run(flt) for x in b.records]
        assert [x.message for x in timed] == [f"m{i}" for i in range(60, 120)]
        limited = [x for b in run(logs_pb2.LogFilter(), limit=7) for x in b.records]
        assert len(limited) == 7
        with pytest.raises(grpc.RpcError) as e:
            run(logs_pb2.LogFilter(regex="("))
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "regex" in e.value.details()
        with pytest.raises(grpc.RpcError) as e:
            list(
                r.client.logs.FollowLogs(
                    logs_pb2.FollowLogsRequest(filter=logs_pb2.LogFilter(source_ids=["nope"])),
                    metadata=md,
                    timeout=10,
                )
            )
        assert e.value.code() == grpc.StatusCode.NOT_FOUND
    finally:
        r.client.close()
        r.sidecar.stop(0)


def test_cri_stdio_source_joins_partial_lines(app: subprocess.Popen[bytes], tmp_path: Path) -> None:
    """A CRI capture file from stdio_logs: P entries joined, streams and times kept."""
    cri = tmp_path / "app-0.log"
    cri.write_text(
        "2024-01-01T00:00:00.000000001Z stdout F hello\n"
        "2024-01-01T00:00:01.5Z stdout P part one, \n"
        "2024-01-01T00:00:01.6Z stderr F oops\n"
        "2024-01-01T00:00:01.7Z stdout F part two\n"
    )
    r = _sidecar(app, stdio_logs=(str(cri),))
    try:
        sid = _source_id(r, str(cri))
        assert sid.startswith("stdio:")
        recs = [
            x
            for b in r.client.logs.FollowLogs(
                logs_pb2.FollowLogsRequest(
                    start_at=logs_pb2.START_AT_BEGINNING,
                    filter=logs_pb2.LogFilter(source_ids=[sid]),
                ),
                metadata=r.client.metadata,
                timeout=10,
            )
            for x in b.records
        ]
    finally:
        r.client.close()
        r.sidecar.stop(0)
    assert [(x.stream, _text(x)) for x in recs] == [
        ("stdout", "hello"),
        ("stderr", "oops"),
        ("stdout", "part one, part two"),
    ]
    assert recs[0].time_ns == 1704067200_000_000_000  # µs precision: the ns digit is not kept
    assert not recs[0].time_is_receive


def test_follow_across_rename_rotation_over_rpc(
    app: subprocess.Popen[bytes], tmp_path: Path
) -> None:
    """A follow stays on the path across a rename rotation: old file's rest, then the new file."""
    log = tmp_path / "app.log"
    log.write_bytes(b"a1\n")
    r = _sidecar(app, log_sources=(str(log),))
    got: list[str] = []
    rotated = False
    try:
        sid = _source_id(r, str(log))
        call = r.client.logs.FollowLogs(
            logs_pb2.FollowLogsRequest(
                start_at=logs_pb2.START_AT_BEGINNING,
                follow=True,
                filter=logs_pb2.LogFilter(source_ids=[sid]),
            ),
            metadata=r.client.metadata,
            timeout=20,
        )
        for b in call:
            got.extend(_text(x) for x in b.records if x.kind == logs_pb2.RECORD_KIND_LINE)
            if got == ["a1"] and not rotated:
                rotated = True  # once: an empty "live" batch also leaves got == ["a1"]
                with log.open("ab") as w:
                    w.write(b"a2\n")
                os.replace(log, tmp_path / "app.log.1")
                log.write_bytes(b"b1\n")
            if "b1" in got:
                call.cancel()
                break
    finally:
        r.client.close()
        r.sidecar.stop(0)
    assert got == ["a1", "a2", "b1"]


def test_tail_lines_default(app: subprocess.Popen[bytes], tmp_path: Path) -> None:
    """START_AT_TAIL returns the last tail_lines lines, then (not following) ends with live=True."""
    log = tmp_path / "app.log"
    log.write_bytes(b"".join(b"%d\n" % i for i in range(500)))
    r = _sidecar(app, log_sources=(str(log),))
    try:
        sid = _source_id(r, str(log))
        batches = list(
            r.client.logs.FollowLogs(
                logs_pb2.FollowLogsRequest(
                    tail_lines=5, filter=logs_pb2.LogFilter(source_ids=[sid])
                ),
                metadata=r.client.metadata,
                timeout=10,
            )
        )
    finally:
        r.client.close()
        r.sidecar.stop(0)
    assert [_text(x) for b in batches for x in b.records] == ["495", "496", "497", "498", "499"]
    assert batches[-1].live
    assert re.fullmatch(r"f1\.[0-9a-f.]+", batches[0].cursors[sid])
