"""Process listing: borescope ListProcesses vs ``ps`` on 1,000 processes.

Spawns 1,000 sleepers, starts a real sidecar process (``python -m sidecar
serve``) on loopback, and times, alternately in the same run:

* subject: ListProcesses with cpu %, rss, threads, fd count and cmdline,
  from sending the request to holding the decoded reply in the client;
* anchor: ``ps -eo pid,ppid,user,stat,lstart,time,rss,nlwp,args`` wall time.

Prints the medians and their ratio (goal: <= 1.0). ``--quick`` uses 200
processes and fewer runs. The first listing (which takes a 100 ms cpu
sample because there is no earlier one) is a warm-up and is not timed; it
is printed separately.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks._sidecar import start_sidecar  # noqa: E402
from protos import processes_pb2  # noqa: E402
from tui.client import Client, Target  # noqa: E402

PS_ARGS = ["ps", "-eo", "pid,ppid,user,stat,lstart,time,rss,nlwp,args"]


def spawn(n: int) -> list[subprocess.Popen[bytes]]:
    """``n`` sleepers (they exit on their own after 10 minutes if orphaned)."""
    return [subprocess.Popen(["sleep", "600"], stdin=subprocess.DEVNULL) for _ in range(n)]


def time_ps() -> float:
    t = time.perf_counter()
    subprocess.run(PS_ARGS, stdout=subprocess.DEVNULL, check=True)
    return time.perf_counter() - t


def time_list(client: Client) -> tuple[float, int]:
    req = processes_pb2.ListProcessesRequest(fields=["fds"])
    t = time.perf_counter()
    resp = client.processes.ListProcesses(req, metadata=client.metadata, timeout=30)
    elapsed = time.perf_counter() - t
    # Count what the reply holds, so the decode cannot be skipped lazily.
    fields = sum(1 for p in resp.processes if p.HasField("fds") and p.cmdline is not None)
    return elapsed, fields


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="bench_ps")
    ap.add_argument("--quick", action="store_true", help="200 processes, 5 runs")
    ap.add_argument("--processes", type=int, default=0)
    ap.add_argument("--runs", type=int, default=0)
    args = ap.parse_args(argv or [])
    n = args.processes or (200 if args.quick else 1000)
    runs = args.runs or (5 if args.quick else 9)
    sleepers = spawn(n)
    with tempfile.TemporaryDirectory(prefix="bench-ps-") as tmp:
        sidecar, address, token = start_sidecar(Path(tmp) / "sidecar.log")
        client = Client(Target(address, token))
        try:
            client.wait_ready(10)
            first, _ = time_list(client)  # warm-up: takes the first cpu sample
            subject: list[float] = []
            anchor: list[float] = []
            listed = 0
            for _ in range(runs):
                anchor.append(time_ps())
                elapsed, listed = time_list(client)
                subject.append(elapsed)
        finally:
            client.close()
            sidecar.send_signal(signal.SIGTERM)
            try:
                sidecar.wait(10)
            except subprocess.TimeoutExpired:
                sidecar.kill()
                sidecar.wait()
            for s in sleepers:
                s.kill()
            for s in sleepers:
                s.wait()
    s_med, a_med = statistics.median(subject), statistics.median(anchor)
    print(f"processes spawned: {n}, listed with fd counts: {listed}, runs: {runs}")
    print(f"first listing (includes the 100 ms first cpu sample): {first * 1000:.1f} ms")
    print(f"anchor: {' '.join(PS_ARGS)} (wall time, same run, alternating)")
    print(
        f"ps_list_{n}: {s_med * 1000:.1f} ms | anchor: {a_med * 1000:.1f} ms "
        f"| ratio: {s_med / a_med:.2f} (goal: <= 1.0)"
    )
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main(sys.argv[1:]))
