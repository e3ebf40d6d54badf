"""Fleet mode: merged top processes across 100 sandbox pods vs the same query on 1 pod.

Starts N real sandbox pods (``tests.fleet.pods``: namespaces, a chroot'd
demo app, one sidecar process per pod, all accepting one token; needs root)
and times, in the same run, the command a person types:

* subject: ``borescope ps --addr A1,...,AN -o json`` (fan-out with the default
  concurrency of 32, each pod asked for its top 50 by cpu, merged);
* anchor: ``borescope ps --addr A1 -o json`` (one pod, the single-target path).

Both are timed as a fresh CLI process (start-up included: what a person
waits for), the median of several runs after one warm-up. The client's peak
RSS is that process's ``ru_maxrss`` (from ``wait4``). Prints one line per
fleet size (10, 50, 100; ``--quick``: 10, 25) and the ratio at the largest
size (goal: <= 2 s for 100 pods; ratio = fleet time / single time).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.fleet.pods import Pods, is_root, started_pods  # noqa: E402

GOAL_S = 2.0


def run_cli(addresses: list[str], token: str) -> tuple[float, int, int, str]:
    """One ``borescope ps`` over ``addresses``: (seconds, peak RSS KiB, exit code, stderr)."""
    argv = [sys.executable, "-m", "tui.cli.main", "ps", "--addr", ",".join(addresses)]
    argv += ["--token", token, "-o", "json", "--fleet-concurrency", "32"]
    t0 = time.perf_counter()
    p = subprocess.Popen(
        argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=dict(os.environ)
    )
    assert p.stderr is not None
    err = p.stderr.read().decode(errors="replace")
    _, status, usage = os.wait4(p.pid, 0)
    took = time.perf_counter() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    return took, usage.ru_maxrss, p.returncode, err


def measure(addresses: list[str], token: str, runs: int) -> tuple[float, int]:
    """Median seconds and max peak RSS (KiB) over ``runs`` (after a warm-up)."""
    run_cli(addresses, token)  # warm-up: first cpu sample in each sidecar, page cache
    times, peaks = [], []
    for _ in range(runs):
        took, peak, rc, err = run_cli(addresses, token)
        if rc != 0:
            raise SystemExit(f"borescope ps failed (exit {rc}): {err.strip()[:500]}")
        times.append(took)
        peaks.append(peak)
    return statistics.median(times), max(peaks)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; 0 when it ran (whatever the figures)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="10 and 25 pods, fewer runs")
    args = ap.parse_args(argv)
    if not is_root():
        print("fleet_top_processes: skipped (sandbox pods need root)")
        return 0
    sizes = [10, 25] if args.quick else [10, 50, 100]
    runs = 3 if args.quick else 5
    t0 = time.monotonic()
    # App self-calls every 30 s: the pods stay quiet, the machine's cores go to the query.
    with started_pods(sizes[-1], interval=30.0) as pods:
        print(f"(started {sizes[-1]} sandbox pods in {time.monotonic() - t0:.0f} s)")
        return _report(pods, sizes, runs)


def _report(pods: Pods, sizes: list[int], runs: int) -> int:
    single, single_peak = measure(pods.addresses[:1], pods.token, runs)
    print(f"fleet_top_processes_1pod: {single:.3f} s (peak RSS {single_peak / 1024:.0f} MiB)")
    fleet = 0.0
    for n in sizes:
        fleet, peak = measure(pods.addresses[:n], pods.token, runs)
        print(
            f"fleet_top_processes_{n}pods: {fleet:.3f} s (peak RSS {peak / 1024:.0f} MiB)"
            f" | anchor 1 pod: {single:.3f} s | ratio: {fleet / single:.2f}"
        )
    n = sizes[-1]
    print(
        f"fleet_top_processes: {fleet:.3f} s for {n} pods | anchor: {single:.3f} s for 1 pod"
        f" | ratio: {fleet / single:.2f} (goal: <= {GOAL_S:g} s for 100 pods)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
