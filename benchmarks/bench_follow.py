"""Follow throughput and latency: lines a client receives from FollowLogs vs ``tail -F``.

Throughput: a writer process appends N numbered lines to a file as fast as it
can; the figure is N divided by the time from the first write to the client
having received the N-th line (records decoded from the gRPC stream, DETAIL_BASIC,
the sidecar in its own process, a local-mode app). The anchor is ``tail -F -n0``
on the same file in the same run, its output read by this process until the
N-th newline. The two alternate; medians of the runs are compared.

Latency: a writer appends one line per millisecond (1k lines/s), each carrying
its write time; the figure is the p99 of receive time minus write time.

    .venv/bin/python -m benchmarks.bench_follow [--quick] [--lines N] [--runs N]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from protos import logs_pb2  # noqa: E402
from tui.client import Client, Target  # noqa: E402

SERVER = r"""
import sys, threading
sys.path.insert(0, sys.argv[1])
from sidecar.config import Config
from sidecar.deps import Deps
from sidecar.server import build
cfg = Config(
    local_root=int(sys.argv[2]), log_sources=(sys.argv[3],), recorder_interval_s=60.0,
    token_sha256=sys.argv[4],
)
sc = build("127.0.0.1:0", cfg, Deps.from_config(cfg))
sc.server.start()
print("PORT", sc.port, flush=True)
sys.stdin.read()
sc.stop(0)
"""

WRITER = r"""
import os, sys
path, n = sys.argv[1], int(sys.argv[2])
line = b"2024-01-01T00:00:00.000Z INFO request served path=/api/v1/items status=200 n=%d\n"
fd = os.open(path, os.O_WRONLY | os.O_APPEND)
chunk = 20000
for start in range(0, n, chunk):
    os.write(fd, b"".join(line % i for i in range(start, min(n, start + chunk))))
os.close(fd)
"""

PACED = r"""
import os, sys, time
path, n, rate = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
fd = os.open(path, os.O_WRONLY | os.O_APPEND)
t0 = time.monotonic()
for i in range(n):
    while time.monotonic() < t0 + i / rate:
        time.sleep(0.0002)
    os.write(fd, b"lat %d %d\n" % (i, time.time_ns()))
os.close(fd)
"""


def _writer(path: str, n: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", WRITER, path, str(n)])


def run_ours(client: Client, sid: str, path: str, n: int) -> float:
    """Seconds from the writer's start until the client has N records."""
    req = logs_pb2.FollowLogsRequest(
        start_at=logs_pb2.START_AT_END,
        follow=True,
        detail=logs_pb2.DETAIL_BASIC,
        max_batch_records=5000,
        filter=logs_pb2.LogFilter(source_ids=[sid]),
    )
    call = client.logs.FollowLogs(req, metadata=client.metadata, timeout=600)
    it = iter(call)
    next(it)  # the first (empty, live) batch: the follower is at the end, waiting
    got = 0
    start = time.perf_counter()
    w = _writer(path, n)
    for batch in it:
        got += len(batch.records)
        if got >= n:
            break
    elapsed = time.perf_counter() - start
    call.cancel()
    w.wait()
    if got != n:
        raise SystemExit(f"borescope delivered {got} of {n} lines")
    return elapsed


def run_tail(path: str, n: int) -> float:
    """Seconds from the writer's start until ``tail -F`` has printed N lines."""
    tail = subprocess.Popen(["tail", "-F", "-n0", "-s", "0.05", path], stdout=subprocess.PIPE)
    assert tail.stdout is not None
    time.sleep(0.3)  # tail has opened the file and is at its end
    start = time.perf_counter()
    w = _writer(path, n)
    seen = 0
    fd = tail.stdout.fileno()
    while seen < n:
        data = os.read(fd, 1 << 20)
        if not data:
            break
        seen += data.count(b"\n")
    elapsed = time.perf_counter() - start
    tail.kill()
    tail.wait()
    w.wait()
    if seen < n:
        raise SystemExit(f"tail printed {seen} of {n} lines")
    return elapsed


def latency(client: Client, sid: str, path: str, n: int) -> list[float]:
    """Milliseconds from write to receipt for n lines at 1k lines/s."""
    req = logs_pb2.FollowLogsRequest(
        start_at=logs_pb2.START_AT_END,
        follow=True,
        detail=logs_pb2.DETAIL_BASIC,
        filter=logs_pb2.LogFilter(source_ids=[sid]),
    )
    call = client.logs.FollowLogs(req, metadata=client.metadata, timeout=600)
    it = iter(call)
    next(it)
    w = subprocess.Popen([sys.executable, "-c", PACED, path, str(n), "1000"])
    out: list[float] = []
    for batch in it:
        now = time.time_ns()
        for r in batch.records:
            text = r.raw or r.message
            if text.startswith("lat "):
                out.append((now - int(text.split()[2])) / 1e6)
        if len(out) >= n:
            break
    call.cancel()
    w.wait()
    return out


def start_sidecar(app_pid: int, path: str) -> tuple[subprocess.Popen[bytes], int, str]:
    """A sidecar in its own process (local mode, following ``path``): (process, port, token)."""
    token = secrets.token_urlsafe(16)
    digest = hashlib.sha256(token.encode()).hexdigest()
    server = subprocess.Popen(
        [sys.executable, "-c", SERVER, str(ROOT), str(app_pid), path, digest],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert server.stdout is not None
    line = b""
    while not line.startswith(b"PORT "):
        line = server.stdout.readline()
        if not line:
            raise SystemExit("the sidecar did not start")
    # Its log lines (structlog on stdout) must not fill the pipe and stall it.
    threading.Thread(target=server.stdout.read, daemon=True).start()
    return server, int(line.split()[1]), token


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="200k lines, 3 runs, 2 s of latency")
    ap.add_argument("--lines", type=int, default=0)
    ap.add_argument("--runs", type=int, default=0)
    args = ap.parse_args(argv)
    n = args.lines or (200_000 if args.quick else 1_000_000)
    runs = args.runs or (3 if args.quick else 5)
    lat_n = 2000 if args.quick else 10_000
    tmp = tempfile.mkdtemp(prefix="bs-bench-follow-")
    path = os.path.join(tmp, "app.log")
    Path(path).touch()
    app = subprocess.Popen(["sleep", "3600"])
    server, port, token = start_sidecar(app.pid, path)
    try:
        client = Client(Target(f"127.0.0.1:{port}", token))
        client.wait_ready(10)
        sources = client.logs.ListSources(
            logs_pb2.ListSourcesRequest(), metadata=client.metadata, timeout=10
        )
        sid = next(s.id for s in sources.sources if s.path == path)
        run_ours(client, sid, path, min(n, 50_000))  # warm up
        ours: list[float] = []
        tails: list[float] = []
        for _ in range(runs):
            ours.append(run_ours(client, sid, path, n))
            tails.append(run_tail(path, n))
            os.truncate(path, 0)  # keep the file small between runs (followers see a truncation)
            time.sleep(0.3)
        lats = sorted(latency(client, sid, path, lat_n))
        client.close()
        ours_rate = n / statistics.median(ours)
        tail_rate = n / statistics.median(tails)
        print(
            f"follow_throughput ({n} lines, median of {runs}): {ours_rate:,.0f} lines/s | "
            f"anchor: tail -F {tail_rate:,.0f} lines/s | ratio: {ours_rate / tail_rate:.2f} "
            f"(goal: >= 0.5 and >= 500,000 lines/s)"
        )
        p99 = lats[int(len(lats) * 0.99) - 1]
        p50 = lats[len(lats) // 2]
        print(
            f"follow_latency_p99 ({len(lats)} lines at 1k lines/s): {p99:.1f} ms | "
            f"anchor: p50 {p50:.1f} ms, poll interval 20 ms | ratio: {p99 / 50:.2f} of the goal "
            f"(goal: p99 <= 50 ms)"
        )
        return 0
    finally:
        if server.stdin is not None:
            server.stdin.close()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
        app.kill()
        app.wait()
        with __import__("contextlib").suppress(OSError):
            os.unlink(path)
            os.rmdir(tmp)


if __name__ == "__main__":
    sys.exit(main())
