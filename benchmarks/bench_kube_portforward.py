"""Kubernetes port-forward: what it costs a gRPC client, against dialing the sidecar directly.

The forwarder (one local listener, a v4.channel.k8s.io websocket per
connection, opened by the kubernetes client on a fresh ApiClient) runs
against a local fake API server that bridges the websocket to a real
in-process sidecar. There is no network hop and no kubelet here, so this is
the client-side and framing cost only, not a cluster's latency. Anchor: the
same client calling the same sidecar directly.

- unary latency: median grpc.health.v1 ``Check`` over N calls (goal: <= 3x direct);
- connect: a fresh channel's first GetInfo, median of M (goal: <= 50 ms).

``--quick`` runs fewer calls.
"""

from __future__ import annotations

import argparse
import hashlib
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from grpc_health.v1 import health_pb2, health_pb2_grpc  # noqa: E402

from protos import info_pb2  # noqa: E402
from sidecar.config import Config  # noqa: E402
from sidecar.deps import Deps  # noqa: E402
from sidecar.server import build  # noqa: E402
from tests.integration.fake_apiserver import FakeApiServer, make_pod  # noqa: E402
from tui.client import Client, Target  # noqa: E402
from tui.kube import config as kube_config  # noqa: E402
from tui.kube.portforward import Forwarder  # noqa: E402
from tui.kube.targets import parse_target, resolve  # noqa: E402

LATENCY_GOAL = 3.0
CONNECT_GOAL_MS = 50.0
ROUNDS = 3


def unary_us(address: str, token: str, n: int) -> float:
    """Median grpc.health.v1 Check latency (microseconds) over ``n`` calls on one channel.

    Health is the cheapest RPC, so the figure is the transport's cost, not the server's work.
    """
    with Client(Target(address, token)) as c:
        c.wait_ready(10)
        stub = health_pb2_grpc.HealthStub(c.channel)
        req = health_pb2.HealthCheckRequest()
        for _ in range(10):
            stub.Check(req, timeout=10)
        lat = []
        for _ in range(n):
            t = time.perf_counter()
            stub.Check(req, timeout=10)
            lat.append(time.perf_counter() - t)
    return statistics.median(lat) * 1e6


def connect_ms(address: str, token: str, m: int) -> float:
    """Median time (ms) from a new channel to its first GetInfo answer."""
    out = []
    for _ in range(m):
        t = time.perf_counter()
        with Client(Target(address, token), options=[("grpc.use_local_subchannel_pool", 1)]) as c:
            c.info.GetInfo(
                info_pb2.GetInfoRequest(), metadata=c.metadata, timeout=10, wait_for_ready=True
            )
        out.append(time.perf_counter() - t)
    return statistics.median(out) * 1e3


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench_kube_portforward")
    p.add_argument("--quick", action="store_true")
    args = p.parse_args(argv or [])
    n, m = (50, 5) if args.quick else (400, 20)
    token = secrets.token_urlsafe(24)
    cfg = Config(token_sha256=hashlib.sha256(token.encode()).hexdigest())
    sc = build("127.0.0.1:0", cfg, Deps.from_config(cfg))
    sc.server.start()
    direct = f"127.0.0.1:{sc.port}"
    api = FakeApiServer().start()
    api.state.add_pod(
        make_pod(
            "web-0",
            "bench",
            containers=[{"name": "app", "image": "a"}, {"name": "borescope", "image": "b"}],
        ),
        address=direct,
    )
    with tempfile.TemporaryDirectory() as tmp:
        cluster = kube_config.load(kubeconfig=api.kubeconfig(f"{tmp}/kc", namespace="bench"))
        fwd = Forwarder(cluster, resolve(cluster, parse_target("pod/web-0")))
        try:
            pf_lat, dir_lat, pf_conn, dir_conn = [], [], [], []
            for _ in range(ROUNDS):  # alternate, so drift hits both sides alike
                pf_lat.append(unary_us(fwd.address, token, n))
                dir_lat.append(unary_us(direct, token, n))
                pf_conn.append(connect_ms(fwd.address, token, m))
                dir_conn.append(connect_ms(direct, token, m))
        finally:
            fwd.close()
            cluster.close()
            api.stop()
            sc.stop(0)
    pf, d = statistics.median(pf_lat), statistics.median(dir_lat)
    print(
        f"kube port-forward health Check p50: {pf:.0f} us | anchor: direct {d:.0f} us | "
        f"ratio: {pf / d:.2f}x (goal: <= {LATENCY_GOAL:g}x)"
    )
    pc, dc = statistics.median(pf_conn), statistics.median(dir_conn)
    print(
        f"kube port-forward new connection to first answer: {pc:.1f} ms | anchor: direct "
        f"{dc:.1f} ms | ratio: {pc / dc:.2f}x (goal: <= {CONNECT_GOAL_MS:g} ms)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
