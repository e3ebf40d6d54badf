"""The sandbox's port-forward: what it costs a client, against dialing inside the pod.

Every end-to-end test and ``borescope demo`` reach the sidecar through the
sandbox's forward (host 127.0.0.1:PORT -> setns thread -> 127.0.0.1:7777 in
the pod's network namespace), as ``kubectl port-forward`` would. The same
client runs alternately through the forward and directly inside the pod's
network namespace (``nsenter --net``: the anchor, no forward at all):

- unary latency: median of N ``Info.GetInfo`` calls (goal: <= 1.5x direct);
- bulk: ``Files.ReadFile`` of 4 MiB, MiB/s (goal: >= 0.7x direct).

Needs root (the sandbox pod). ``--quick`` runs fewer calls and rounds.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sidecar.sandbox.podns import SIDECAR_PORT  # noqa: E402
from sidecar.sandbox.start import start_sandbox  # noqa: E402

LATENCY_GOAL = 1.5
THROUGHPUT_GOAL = 0.7
BULK_BYTES = 4 << 20

CLIENT = r"""
import json, statistics, sys, time
sys.path.insert(0, sys.argv[5])
from protos import files_pb2, info_pb2
from tui.client import Client, Target
address, token, n, path = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
c = Client(Target(address, token))
c.wait_ready(10)
req = info_pb2.GetInfoRequest()
for _ in range(20):
    c.info.GetInfo(req, metadata=c.metadata, timeout=10)
lat = []
for _ in range(n):
    t = time.perf_counter()
    c.info.GetInfo(req, metadata=c.metadata, timeout=10)
    lat.append(time.perf_counter() - t)
rates = []
for _ in range(max(3, n // 50)):
    t = time.perf_counter()
    data = c.files.ReadFile(files_pb2.ReadFileRequest(path=path, length=4 << 20),
                            metadata=c.metadata, timeout=30).data
    rates.append(len(data) / (time.perf_counter() - t) / (1 << 20))
print(json.dumps({"latency_us": statistics.median(lat) * 1e6, "mib_s": statistics.median(rates)}))
"""


def measure(prefix: list[str], address: str, token: str, n: int) -> dict[str, float]:
    """Run the client once (``prefix`` puts it in the pod's netns or not)."""
    out = subprocess.run(
        [
            *prefix,
            sys.executable,
            "-c",
            CLIENT,
            address,
            token,
            str(n),
            "/tmp/bench.bin",
            str(ROOT),
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    ).stdout
    result: dict[str, float] = json.loads(out)
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="fewer calls and rounds")
    args = p.parse_args(argv)
    if os.geteuid() != 0:
        print("sandbox_forward: skipped (the sandbox pod needs root)")
        return 0
    n, rounds = (200, 3) if args.quick else (1000, 5)
    sb = start_sandbox("pod", interval=5.0)
    try:
        Path(sb.app_root, "tmp/bench.bin").write_bytes(os.urandom(BULK_BYTES))
        inside = ["nsenter", f"--net={sb.netns}"]
        fwd: list[dict[str, float]] = []
        direct: list[dict[str, float]] = []
        for _ in range(rounds):  # alternate, so drift hits both sides alike
            fwd.append(measure([], sb.address, sb.token, n))
            direct.append(measure(inside, f"127.0.0.1:{SIDECAR_PORT}", sb.token, n))
    finally:
        sb.close()
    f_lat = statistics.median(r["latency_us"] for r in fwd)
    d_lat = statistics.median(r["latency_us"] for r in direct)
    f_bw = statistics.median(r["mib_s"] for r in fwd)
    d_bw = statistics.median(r["mib_s"] for r in direct)
    print(
        f"sandbox_forward_unary_latency: {f_lat:.0f} us | anchor (direct in pod netns): "
        f"{d_lat:.0f} us | ratio: {f_lat / d_lat:.2f} (goal: <= {LATENCY_GOAL})"
    )
    print(
        f"sandbox_forward_read_4mib: {f_bw:.0f} MiB/s | anchor (direct in pod netns): "
        f"{d_bw:.0f} MiB/s | ratio: {f_bw / d_bw:.2f} (goal: >= {THROUGHPUT_GOAL})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
