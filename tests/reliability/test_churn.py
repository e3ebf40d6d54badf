"""Churn: many connect/call/disconnect cycles leak no fds and no threads in the sidecar.

The sidecar is a real ``python -m sidecar serve`` process, so its fds and
threads are read from /proc, untouched by the test's own clients.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator

import grpc
import pytest

from protos import info_pb2, info_pb2_grpc
from tests.reliability._pod import SidecarProc, usage

pytestmark = pytest.mark.timeout(200)


@pytest.fixture
def sidecar() -> Iterator[SidecarProc]:
    app = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        with SidecarProc([f"local_root={app.pid}"]) as sc:
            yield sc
    finally:
        app.kill()
        app.wait()


def _cycle(sc: SidecarProc) -> None:
    with grpc.insecure_channel(sc.address) as ch:
        info_pb2_grpc.InfoStub(ch).GetInfo(
            info_pb2.GetInfoRequest(),
            metadata=(("authorization", f"Bearer {sc.token}"),),
            timeout=10,
        )


def baseline(pid: int, span_s: float = 2.5) -> dict[str, int]:
    """The highest idle usage over ``span_s`` (the flight recorder opens files on its ticks)."""
    worst = usage(pid)
    deadline = time.monotonic() + span_s
    while time.monotonic() < deadline:
        time.sleep(0.1)
        worst = {k: max(v, usage(pid)[k]) for k, v in worst.items()}
    return worst


def settled(
    pid: int, base: dict[str, int], keys: tuple[str, ...], wait_s: float = 8
) -> dict[str, int]:
    """The process's usage once ``keys`` are back at ``base`` (or the last sample after ``wait_s``)."""
    deadline = time.monotonic() + wait_s
    while True:
        now = usage(pid)
        if all(now[k] <= base[k] for k in keys) or time.monotonic() > deadline:
            return now
        time.sleep(0.1)


def test_connect_disconnect_cycles_leak_nothing(
    sidecar: SidecarProc, soak: bool, figures: object
) -> None:
    """1,000 cycles (10,000 with --soak) of open channel, GetInfo, close: afterwards the
    sidecar has no more fds than its idle baseline after the warm-up and at most two more
    threads (the gRPC pool may add an idle worker; it is bounded by max_concurrent_rpcs,
    while a per-connection leak would add hundreds), and every call succeeded."""
    n = 10_000 if soak else 1_000
    for _ in range(100):  # warm-up: the pool's first threads, lazy imports
        _cycle(sidecar)
    base = baseline(sidecar.pid)
    t0 = time.monotonic()
    for _ in range(n):
        _cycle(sidecar)
    took = time.monotonic() - t0
    after = settled(sidecar.pid, base, ("fds", "threads"))
    add = figures.add  # type: ignore[attr-defined]
    add("test_churn", "cycles", n, "connect/call/close", f"{n / took:.0f} per s")
    for k in ("fds", "threads", "rss_kib"):
        add("test_churn", f"sidecar {k} before / after", f"{base[k]} / {after[k]}", "")
    assert after["fds"] <= base["fds"], (base, after)
    assert after["threads"] <= base["threads"] + 2, (base, after)
    assert after["rss_kib"] < base["rss_kib"] + 32 * 1024, (base, after)
