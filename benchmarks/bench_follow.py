"""Follow throughput and latency of ``borescope logs -f`` vs ``tail -F`` on the same file.

This measures the mode the CLI uses for ``borescope logs -f --source FILE``:
raw mode (DETAIL_RAW: the server sends runs of whole lines, the CLI writes
them to its stdout in bulk). Both sides are measured the same way: the CLI
(``python -m tui.cli.main logs -f --source FILE -n 0``, a real process talking
gRPC to a sidecar in its own process, local mode) and the anchor ``tail -F
-n0`` on the same file each write to a pipe that this process reads, counting
newlines. Before a run each proves it is live (a sentinel line appended to the
file comes out of it); then a writer process appends N numbered lines as fast
as it can and the figure is N over the time from the writer's start to the
N-th line out of the pipe. The two alternate; medians of the runs are
compared. For reference, the parsed-records mode (DETAIL_BASIC into an
in-process gRPC client, what the TUI consumes) is measured the same way
beside the same anchor.

Latency: a writer appends one line per millisecond (1k lines/s), each carrying
its write time; the figure is the p99 of "line out of the CLI's stdout" minus
write time.

    .venv/bin/python -m benchmarks.bench_follow [--quick] [--lines N] [--runs N]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import secrets
import select
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
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


def _append(path: str, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def _await_live(fd: int, path: str, timeout: float = 30.0) -> None:
    """Append sentinel lines until one comes out of ``fd``; then drain every sentinel."""
    deadline = time.monotonic() + timeout
    buf = b""
    sent = 0
    while time.monotonic() < deadline:
        if sent == 0 or (b"sentinel" not in buf):
            sent += 1
            _append(path, b"sentinel %d\n" % sent)
        ready, _, _ = select.select([fd], [], [], 0.3)
        if ready:
            data = os.read(fd, 1 << 16)
            if not data:
                raise SystemExit("the follower exited before it was live")
            buf += data
        if b"sentinel %d\n" % sent in buf:
            return
    raise SystemExit(f"the follower did not print a sentinel within {timeout:.0f} s")


def _count(fd: int, n: int) -> int:
    seen = 0
    while seen < n:
        data = os.read(fd, 1 << 20)
        if not data:
            break
        seen += data.count(b"\n")
    return seen


def _timed(argv: list[str], path: str, n: int, env: dict[str, str] | None = None) -> float:
    """Seconds from the writer's start until ``argv`` (a follower) has printed N lines."""
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    try:
        _await_live(fd, path)
        start = time.perf_counter()
        w = _writer(path, n)
        seen = _count(fd, n)
        elapsed = time.perf_counter() - start
        w.wait()
    finally:
        proc.kill()
        proc.wait()
    if seen < n:
        raise SystemExit(f"{argv[0]} printed {seen} of {n} lines")
    return elapsed


def cli_argv(port: int, path: str) -> list[str]:
    """``borescope logs -f --source PATH -n 0`` against the sidecar."""
    return [
        sys.executable,
        "-m",
        "tui.cli.main",
        "logs",
        "-f",
        "--source",
        path,
        "-n",
        "0",
        "--addr",
        f"127.0.0.1:{port}",
    ]


def run_cli(port: int, token: str, path: str, n: int) -> float:
    """Seconds until ``borescope logs -f`` has printed N lines."""
    env = {**os.environ, "BORESCOPE_TOKEN": token, "PYTHONPATH": str(ROOT)}
    return _timed(cli_argv(port, path), path, n, env)


def run_tail(path: str, n: int) -> float:
    """Seconds until ``tail -F`` has printed N lines."""
    return _timed(["tail", "-F", "-n0", "-s", "0.05", path], path, n)


def run_records(client: Client, sid: str, path: str, n: int) -> float:
    """Seconds until an in-process client has N records (DETAIL_BASIC, the TUI's mode)."""
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


def latency(port: int, token: str, path: str, n: int) -> list[float]:
    """Milliseconds from write to ``borescope logs -f`` printing it, n lines at 1k lines/s."""
    env = {**os.environ, "BORESCOPE_TOKEN": token, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        cli_argv(port, path), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env
    )
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    out: list[float] = []
    try:
        _await_live(fd, path)
        w = subprocess.Popen([sys.executable, "-c", PACED, path, str(n), "1000"])
        rest = b""
        while len(out) < n:
            data = os.read(fd, 1 << 20)
            if not data:
                break
            now = time.time_ns()
            *lines, rest = (rest + data).split(b"\n")
            for line in lines:
                if line.startswith(b"lat "):
                    out.append((now - int(line.split()[2])) / 1e6)
        w.wait()
    finally:
        proc.kill()
        proc.wait()
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


def _alternate(
    ours: Callable[[], float], path: str, n: int, runs: int
) -> tuple[list[float], list[float]]:
    """``runs`` timings of ``ours`` and of ``tail -F``, alternating, the file emptied between."""
    a: list[float] = []
    b: list[float] = []
    for _ in range(runs):
        for out, run in ((a, ours), (b, lambda: run_tail(path, n))):
            out.append(run())
            os.truncate(path, 0)  # keep the file small between runs (followers see a truncation)
            time.sleep(0.3)
    return a, b


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="200k lines, 3 runs, 2 s of latency")
    ap.add_argument("--lines", type=int, default=0)
    ap.add_argument("--runs", type=int, default=0)
    args = ap.parse_args(argv)
    n = args.lines or (200_000 if args.quick else 1_000_000)
    runs = max(3, args.runs or (3 if args.quick else 5))
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
        run_cli(port, token, path, min(n, 50_000))  # warm up (page cache, imports)
        ours, tails = _alternate(lambda: run_cli(port, token, path, n), path, n, runs)
        recs, rec_tails = _alternate(lambda: run_records(client, sid, path, n), path, n, runs)
        client.close()
        lats = sorted(latency(port, token, path, lat_n))
        ours_rate = n / statistics.median(ours)
        tail_rate = n / statistics.median(tails)
        print(
            f"follow_throughput `borescope logs -f` raw ({n} lines, median of {runs}): "
            f"{ours_rate:,.0f} lines/s | anchor: tail -F {tail_rate:,.0f} lines/s | "
            f"ratio: {ours_rate / tail_rate:.2f} (goal: >= 0.5 and >= 500,000 lines/s) | "
            f"runs: {', '.join(f'{n / t:,.0f}' for t in ours)} vs "
            f"{', '.join(f'{n / t:,.0f}' for t in tails)}"
        )
        rec_rate = n / statistics.median(recs)
        rec_tail = n / statistics.median(rec_tails)
        print(
            f"follow_throughput records (DETAIL_BASIC, in-process client; reference) ({n} lines, "
            f"median of {runs}): {rec_rate:,.0f} lines/s | anchor: tail -F {rec_tail:,.0f} "
            f"lines/s | ratio: {rec_rate / rec_tail:.2f}"
        )
        p99 = lats[int(len(lats) * 0.99) - 1]
        p50 = lats[len(lats) // 2]
        print(
            f"follow_latency_p99 `borescope logs -f` ({len(lats)} lines at 1k lines/s): "
            f"{p99:.1f} ms | anchor: p50 {p50:.1f} ms, poll interval 20 ms | ratio: "
            f"{p99 / 50:.2f} of the goal (goal: p99 <= 50 ms)"
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
