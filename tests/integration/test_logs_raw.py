"""FollowLogs in raw mode (DETAIL_RAW) over real gRPC, and ``borescope logs -f`` using it.

Exactly once across killed TCP connections, rotation by rename and by
copytruncate while following, long lines (records between chunks), and the
CLI's raw output. The sidecar runs in local mode (the app is a real child
process); killed connections go through the loopback proxy of test_logs_follow.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from protos import logs_pb2, logs_pb2_grpc
from sidecar.config import Config
from tests.conftest import ROOT, Running, start_sidecar
from tests.integration.test_logs_follow import Proxy
from tui.cli.logs_raw import batch_items, chunk_lines, chunk_records

NUM = re.compile(rb"n=(\d+)")


@pytest.fixture
def app() -> Iterator[subprocess.Popen[bytes]]:
    p = subprocess.Popen(["sleep", "300"])
    yield p
    p.kill()
    p.wait()


def _source_id(r: Running, path: Path) -> str:
    resp = r.client.logs.ListSources(
        logs_pb2.ListSourcesRequest(), metadata=r.client.metadata, timeout=10
    )
    return next(s.id for s in resp.sources if s.path == str(path))


def _raw_request(sid: str, cursors: dict[str, str], batch: int = 0) -> logs_pb2.FollowLogsRequest:
    return logs_pb2.FollowLogsRequest(
        cursors=cursors,
        start_at=logs_pb2.START_AT_BEGINNING,
        follow=True,
        max_batch_records=batch,
        detail=logs_pb2.DETAIL_RAW,
        filter=logs_pb2.LogFilter(source_ids=[sid]),
    )


def _numbers(batch: logs_pb2.LogBatch, notes: list[str] | None = None) -> list[int]:
    """The numbered lines of a raw batch in order (chunks split, records read)."""
    out: list[int] = []
    for item in batch_items(batch):
        if isinstance(item, logs_pb2.RawChunk):
            out += [int(m.group(1)) for line in chunk_lines(item) if (m := NUM.match(line))]
        elif item.kind == logs_pb2.RECORD_KIND_LINE:
            m = NUM.match((item.raw or item.message).encode())
            assert m is not None, item
            out.append(int(m.group(1)))
        elif notes is not None:
            notes.append(
                f"{logs_pb2.RecordKind.Name(item.kind)}: {item.gap.reason or item.message}"
            )
    return out


def test_raw_exactly_once_across_ten_killed_connections(
    app: subprocess.Popen[bytes], tmp_path: Path
) -> None:
    """100,000 numbered lines (some longer than the cap: records between chunks) while the
    client's TCP connection is cut 10 times mid-stream: each number arrives exactly once,
    in order, and the stream really was raw (chunks, and long lines as truncated records)."""
    log = tmp_path / "app.log"
    log.touch()
    r = start_sidecar(Config(local_root=app.pid, log_sources=(str(log),), log_line_cap=256))
    sid = _source_id(r, log)
    proxy = Proxy(int(r.address.rsplit(":", 1)[1]))
    total = 100_000

    def line(i: int) -> bytes:
        return b"n=%d %s\n" % (i, b"L" * 400 if i % 997 == 0 else b"ok")

    def writer() -> None:
        with log.open("ab", buffering=0) as w:
            for chunk in range(total // 500):
                w.write(b"".join(line(i) for i in range(chunk * 500, chunk * 500 + 500)))
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
    errors = chunks = truncated = 0
    deadline = time.monotonic() + 90
    try:
        while len(seen) < total and time.monotonic() < deadline:
            try:
                # 700 lines a batch: chunks are cut mid-read, so cursors land inside reads
                for batch in stub.FollowLogs(
                    _raw_request(sid, cursors, 700), metadata=r.client.metadata, timeout=60
                ):
                    seen += _numbers(batch)
                    chunks += len(batch.chunks)
                    truncated += sum(x.truncated for x in batch.records)
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
    assert kills == 10 and errors >= 10
    assert len(seen) == total, f"{len(seen)} lines, {len(set(seen))} distinct"
    assert seen == list(range(total))
    assert chunks > 0 and truncated == len(range(0, total, 997))


def _shift(log: Path, keep: int = 20) -> None:
    """logrotate's numbering: app.log.N -> app.log.N+1, ..., app.log.1 -> app.log.2."""
    for k in range(keep, 0, -1):
        old = Path(f"{log}.{k}")
        if old.exists():
            os.replace(old, f"{log}.{k + 1}")


@pytest.mark.parametrize("method", ["rename", "copytruncate"])
def test_raw_follow_across_rotations(
    app: subprocess.Popen[bytes], tmp_path: Path, method: str
) -> None:
    """A writer appends numbered lines without pause while the log is rotated 4 times (by
    rename: the writer reopens the path a little later, as loggers do; by copytruncate: the
    copy is taken and the file truncated between two writes). A raw follow receives every
    number exactly once, in order, and is told about each rotation."""
    log = tmp_path / "app.log"
    log.touch()
    r = start_sidecar(Config(local_root=app.pid, log_sources=(str(log),)))
    sid = _source_id(r, log)
    total, per_rotation = 24_000, 4_800
    done = threading.Event()

    def writer() -> None:
        f = log.open("ab", buffering=0)
        try:
            i = 0
            while i < total:
                f.write(b"".join(b"n=%d\n" % k for k in range(i, i + 100)))
                i += 100
                if i % per_rotation == 0 and i < total:
                    time.sleep(0.3)  # let the follower catch up to some of it, not all
                    _shift(log)
                    if method == "rename":
                        os.replace(log, f"{log}.1")
                        f.write(b"".join(b"n=%d\n" % k for k in range(i, i + 100)))  # late
                        i += 100
                        f.close()
                        f = log.open("ab", buffering=0)
                    else:
                        shutil.copyfile(log, f"{log}.1")
                        os.truncate(log, 0)
                    time.sleep(0.4)  # rotations further apart than rotate_grace
                time.sleep(0.002)
        finally:
            f.close()
            done.set()

    wt = threading.Thread(target=writer)
    wt.start()
    seen: list[int] = []
    notes: list[str] = []
    try:
        call = r.client.logs.FollowLogs(
            _raw_request(sid, {}), metadata=r.client.metadata, timeout=60
        )
        for batch in call:
            seen += _numbers(batch, notes)
            if len(seen) >= total:
                call.cancel()
                break
    finally:
        wt.join()
        r.client.close()
        r.sidecar.stop(0)
    assert len(seen) == total, (len(seen), len(set(seen)), notes)
    assert seen == list(range(total)), notes
    assert not [n for n in notes if n.startswith("RECORD_KIND_GAP")], notes
    word = "rotated" if method == "rename" else "truncated"
    assert sum(word in n for n in notes) == 4, notes


def test_raw_long_lines_and_lazy_records(app: subprocess.Popen[bytes], tmp_path: Path) -> None:
    """Lines over the cap come as truncated records between the chunks (by seq); a long line
    written in pieces while following too; chunks split lazily into records on the client."""
    log = tmp_path / "app.log"
    log.write_bytes(b"short 1\n" + b"A" * 300 + b"\nshort 2\nshort 3\n")
    r = start_sidecar(Config(local_root=app.pid, log_sources=(str(log),), log_line_cap=100))
    items: list[logs_pb2.Record | logs_pb2.RawChunk] = []
    try:
        sid = _source_id(r, log)
        call = r.client.logs.FollowLogs(
            _raw_request(sid, {}), metadata=r.client.metadata, timeout=30
        )
        wrote = False
        for batch in call:
            items += batch_items(batch)
            if batch.live and not wrote:
                wrote = True
                with log.open("ab", buffering=0) as f:
                    f.write(b"B" * 80)
                    time.sleep(0.1)  # the follower sees the first part alone
                    f.write(b"B" * 80 + b"\nshort 4\n")
            if any(isinstance(x, logs_pb2.RawChunk) and b"short 4" in x.data for x in items):
                call.cancel()
                break
    finally:
        r.client.close()
        r.sidecar.stop(0)
    flat: list[tuple[int, str, bool]] = []
    for x in sorted(items, key=lambda x: x.seq):
        if isinstance(x, logs_pb2.RawChunk):
            recs = list(chunk_records(x))
            assert all(rec.time_is_receive and rec.time_ns == x.time_ns for rec in recs)
            assert [rec.offset for rec in recs][:1] == [x.offset]
            flat += [(rec.seq, rec.message, False) for rec in recs]
        else:
            flat.append((x.seq, x.raw or x.message, x.truncated))
    assert [s for s, _, _ in flat] == list(range(6))
    assert [(t[:3], tr) for _, t, tr in flat] == [
        ("sho", False),
        ("AAA", True),
        ("sho", False),
        ("sho", False),
        ("BBB", True),
        ("sho", False),
    ]
    assert "truncated" in flat[1][1] and flat[1][1].startswith("A" * 100)
    assert flat[4][1].startswith("B" * 100) and "60 bytes" in flat[4][1]
    assert log.read_bytes().index(b"short 2") == next(x for x in items if x.seq == 2).offset


def test_raw_falls_back_to_records_when_filtered(
    app: subprocess.Popen[bytes], tmp_path: Path
) -> None:
    """DETAIL_RAW with a regex filter: records only (the filter needs parsed lines)."""
    log = tmp_path / "app.log"
    log.write_bytes(b"keep 1\ndrop 2\nkeep 3\n")
    r = start_sidecar(Config(local_root=app.pid, log_sources=(str(log),)))
    try:
        sid = _source_id(r, log)
        req = _raw_request(sid, {})
        req.follow = False
        req.filter.regex = "keep"
        batches = list(r.client.logs.FollowLogs(req, metadata=r.client.metadata, timeout=10))
    finally:
        r.client.close()
        r.sidecar.stop(0)
    assert not any(b.chunks for b in batches)
    assert [x.message for b in batches for x in b.records] == ["keep 1", "keep 3"]


class _Cli:
    """``borescope logs ARGS`` as a process; its stdout lines arrive on a queue."""

    def __init__(self, r: Running, *args: str) -> None:
        self.p = subprocess.Popen(
            [sys.executable, "-m", "tui.cli.main", "logs", *args, "--addr", r.address],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            env={**os.environ, "BORESCOPE_TOKEN": r.client.target.token},
        )
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.p.stdout is not None
        for line in self.p.stdout:
            self.lines.put(line)

    def line(self, timeout: float = 15.0) -> str:
        return self.lines.get(timeout=timeout)

    def stop(self) -> None:
        self.p.send_signal(signal.SIGINT)
        try:
            self.p.wait(timeout=10)
        finally:
            self.p.kill()
        err = self.p.stderr.read() if self.p.stderr else ""
        assert self.p.returncode == 130 and "Traceback" not in err, err


def test_cli_follow_raw_output(app: subprocess.Popen[bytes], tmp_path: Path) -> None:
    """`logs -f` writes the lines as written, escaped, with a [source] prefix when following
    several sources; `-n 0` starts at the end; `--parse` and `-o json` still parse."""
    a, b, c = tmp_path / "a.log", tmp_path / "b.log", tmp_path / "c.log"
    a.write_bytes(b"2024-01-01T00:00:00Z INFO old a\n")
    b.write_bytes(b"")
    c.write_bytes(b"before\n")
    evil = b"2024-01-01T00:00:05Z WARN evil \x1b]0;title\x07 \xff\n"
    shown = "2024-01-01T00:00:05Z WARN evil \\x1b]0;title\\x07 \ufffd\n"
    r = start_sidecar(Config(local_root=app.pid, log_sources=(str(a), str(b), str(c))))
    clis: list[_Cli] = []
    try:
        clis += [
            one := _Cli(r, "-f", "--source", "c.log", "-n", "0"),
            both := _Cli(r, "-f", "--source", "a.log", "--source", "b.log"),
            parsed := _Cli(r, "-f", "--source", "a.log", "--parse"),
            js := _Cli(r, "-f", "--source", "a.log", "-o", "json"),
        ]
        assert both.line() == "[a.log] 2024-01-01T00:00:00Z INFO old a\n"
        assert "INFO  [a.log] 2024-01-01T00:00:00Z INFO old a" in parsed.line()
        assert json.loads(js.line())["message"].endswith("old a")
        # -n 0: nothing of c.log's past; once it is live, new lines (sentinels until then)
        for k in range(100):
            with c.open("ab") as f:
                f.write(b"sentinel %d\n" % k)
            with contextlib.suppress(queue.Empty):
                first = one.line(timeout=0.2)
                break
        assert first.startswith("sentinel ")
        with c.open("ab") as f:
            f.write(evil)
        with a.open("ab") as f:
            f.write(evil)
        with b.open("ab") as f:
            f.write(b"from b\n")
        while (line := one.line()).startswith("sentinel "):
            pass
        assert line == shown
        assert {both.line(), both.line()} == {f"[a.log] {shown}", "[b.log] from b\n"}
        assert "WARN  [a.log] 2024-01-01T00:00:05Z WARN evil \\x1b" in parsed.line()
        assert json.loads(js.line())["level"] == "LEVEL_WARN"
    finally:
        for cli in clis:
            cli.stop()
        r.client.close()
        r.sidecar.stop(0)
