"""Sockets with owners, request -> decoded reply, against ``ss -tanp`` in the same run.

A helper process holds N loopback connections (2N TCP sockets, plus its
listener) in a network namespace made for the run (as root; otherwise in the
current namespace, where other sockets add to both sides equally). A
local-mode sidecar whose app is that helper serves ListSockets over a real
channel; the figure is the time from request to decoded reply at the client
(the stub's decoded ListSocketsResponse). The anchor is ``ss -tanp`` run in
the same namespace, its output fully read. Every socket's owner is checked
after each timing, outside it. Both are repeated alternately (7 runs, 5
with --quick); the times printed are medians, and the ratio is the median of
the per-run ratios (ours and ss timed back to back), which cancels load that
drifts between runs on a shared machine.

    .venv/bin/python -m benchmarks.bench_sockets [--quick] [--runs N]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import secrets
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from protos import network_pb2  # noqa: E402
from sidecar.config import Config  # noqa: E402
from sidecar.deps import Deps  # noqa: E402
from sidecar.server import build  # noqa: E402
from tui.client import Client, Target  # noqa: E402

HELPER = r"""
import resource, socket, sys
n = int(sys.argv[1])
want = 2 * n + 64
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, want), max(hard, want)))
ls = socket.socket(); ls.bind(("127.0.0.1", 0)); ls.listen(4096)
port = ls.getsockname()[1]
keep = []
for _ in range(n):
    c = socket.socket(); c.connect(("127.0.0.1", port))
    keep.append(c); keep.append(ls.accept()[0])
print(port, flush=True)
sys.stdin.read()
"""


class Namespace:
    """A throwaway network namespace (root) or the current one (not root)."""

    def __init__(self) -> None:
        self.name = f"bs-bench-{secrets.token_hex(3)}" if os.geteuid() == 0 else ""
        if self.name:
            subprocess.run(["ip", "netns", "add", self.name], check=True)
            subprocess.run(
                ["ip", "netns", "exec", self.name, "ip", "link", "set", "lo", "up"], check=True
            )

    def prefix(self) -> list[str]:
        return ["nsenter", f"--net=/run/netns/{self.name}"] if self.name else []

    def close(self) -> None:
        if self.name:
            subprocess.run(["ip", "netns", "del", self.name], check=False)


def time_ours(client: Client) -> tuple[float, int]:
    req = network_pb2.ListSocketsRequest(protocols=[network_pb2.SOCKET_PROTOCOL_TCP])
    start = time.perf_counter()
    # The stub returns the reply decoded (ListSocketsResponse.FromString).
    resp = client.network.ListSockets(req, metadata=client.metadata, timeout=60)
    elapsed = time.perf_counter() - start
    # Checked outside the timing, like ss's text, which is read but not parsed.
    owned = sum(1 for s in resp.sockets if s.owners)
    return elapsed, owned


def time_ss(ns: Namespace) -> tuple[float, int]:
    start = time.perf_counter()
    out = subprocess.run([*ns.prefix(), "ss", "-tanp"], capture_output=True, check=True).stdout
    elapsed = time.perf_counter() - start
    return elapsed, out.count(b"pid=")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="2,000 connections, 5 runs")
    ap.add_argument("--connections", type=int, default=0)
    ap.add_argument("--runs", type=int, default=0)
    args = ap.parse_args(argv)
    n = args.connections or (2000 if args.quick else 9000)
    runs = args.runs or (5 if args.quick else 7)
    ns = Namespace()
    helper = None
    sc = None
    try:
        helper = subprocess.Popen(
            [*ns.prefix(), sys.executable, "-c", HELPER, str(n)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        assert helper.stdout is not None
        helper.stdout.readline()
        token = secrets.token_urlsafe(16)
        config = Config(
            local_root=helper.pid,
            token_sha256=hashlib.sha256(token.encode()).hexdigest(),
            # The flight recorder samples in the sidecar's process every 2 s; in
            # local mode on a shared machine it reads every host process. It is
            # not part of the listing measured here, so it stays quiet.
            recorder_interval_s=3600.0,
        )
        sc = build("127.0.0.1:0", config, Deps.from_config(config))
        sc.server.start()
        client = Client(Target(f"127.0.0.1:{sc.port}", token))
        client.wait_ready(5)
        time_ours(client)  # warm up: channel, imports, page cache of /proc
        time_ss(ns)
        ours: list[float] = []
        anchor: list[float] = []
        owned = seen_ss = 0
        for _ in range(runs):
            t, owned = time_ours(client)
            ours.append(t)
            t, seen_ss = time_ss(ns)
            anchor.append(t)
        client.close()
        a, b = statistics.median(ours) * 1000, statistics.median(anchor) * 1000
        # Each run times ours and then ss back to back: the median of those
        # paired ratios cancels load that drifts between runs (a shared machine).
        ratio = statistics.median(x / y for x, y in zip(ours, anchor, strict=True))
        print(
            f"# {2 * n + 1} TCP sockets held by one process; {owned} listed with an owner, ss saw {seen_ss}"
        )
        print(
            f"sockets_with_owners: {a:.1f} ms | anchor: {b:.1f} ms (ss -tanp) | "
            f"ratio: {ratio:.2f} (goal: <= 1.0; median of {runs} paired runs)"
        )
        if owned < 2 * n:
            print(f"warning: only {owned} of {2 * n + 1} sockets had an owner", file=sys.stderr)
            return 1
        return 0
    finally:
        if sc is not None:
            sc.stop(0)
        if helper is not None:
            helper.kill()
            helper.wait()
        ns.close()


if __name__ == "__main__":
    sys.exit(main())
