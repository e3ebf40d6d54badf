"""Load: 50 concurrent clients mixing listings, downloads and follows against a real sidecar.

Each client has its own channel and loops over a weighted mix of RPCs for the
run's duration (20 s in CI, 60 s with ``--soak``); follows read a few batches
and then cancel. Every error counts (our own cancels excepted). The sidecar is
a separate process, so its RSS, fds and threads come from /proc: they are
compared before and after the run.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import pytest

from sidecar.server import SPARE_THREADS
from tests.conftest import ROOT
from tests.reliability._pod import LOG_PATH, App, SidecarProc, canary_app, is_root
from tests.reliability.test_churn import baseline, settled

pytestmark = [
    pytest.mark.skipif(not is_root(), reason="needs root: the app runs chrooted"),
    pytest.mark.timeout(240),
]

CLIENTS = 50
PROCS = 5  # client processes: client-side protobuf work and the GIL are spread out
KINDS = {"ListProcesses", "ListDir", "Stat", "ReadFile", "Download", "FollowLogs", "GetInfo"}


@pytest.fixture
def pod() -> Iterator[tuple[App, SidecarProc]]:
    """The canary app (a log line every 50 ms) and a sidecar process watching it."""
    with (
        canary_app(interval=0.05) as app,
        SidecarProc([f"local_root={app.pid}", f"log_sources={LOG_PATH}"]) as sc,
    ):
        yield app, sc


def _log_fds(pid: int) -> int:
    """How many of the process's fds are open on the app's log file."""
    n = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(OSError):  # an fd closed meanwhile
            n += os.readlink(f"/proc/{pid}/fd/{fd}").endswith(LOG_PATH)
    return n


def _pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else 0.0


def test_fifty_clients_mixed_load(pod: tuple[App, SidecarProc], soak: bool, figures: Any) -> None:
    """50 clients (5 processes x 10 channels) for 20 s (60 s with --soak) of listings,
    reads, downloads and follows: zero errors, every kind of call made, and afterwards the sidecar's fds are back at or
    under their level after a warm-up at the same concurrency, RSS within 64 MiB of it,
    and threads within the idle count plus the gRPC pool's fixed cap (no per-call leak)."""
    app, sc = pod
    duration = 60.0 if soak else 20.0
    lat: dict[str, list[float]] = defaultdict(list)
    errors: list[str] = []

    def run(seconds: float, procs: int = PROCS, each: int = CLIENTS // PROCS) -> float:
        """``procs`` client processes x ``each`` threads for ``seconds``; gather results."""
        argv = [sys.executable, "-m", "tests.reliability._loadclient", sc.address, sc.token,
                app.container_id, str(each), str(seconds)]  # fmt: skip
        t0 = time.monotonic()
        ps = [
            subprocess.Popen([*argv, str(i)], cwd=ROOT, stdout=subprocess.PIPE)
            for i in range(procs)
        ]
        for p in ps:
            out, _ = p.communicate(timeout=seconds + 90)  # a stuck client fails here
            assert p.returncode == 0
            got = json.loads(out)
            errors.extend(got["errors"])
            for name, xs in got["lat"].items():
                lat[name].extend(xs)
        return time.monotonic() - t0

    idle = baseline(sc.pid, 1.0)
    run(4.0, 1, 1)  # one client alone: the latency without queueing, for reference
    solo = {k: _pct(v, 0.5) for k, v in lat.items()}
    lat.clear()
    run(3.0)  # warm-up at full concurrency: the pool grows towards its working size
    base = baseline(sc.pid)
    base_log_fds = _log_fds(sc.pid)
    lat.clear()
    errors.clear()
    wall = run(duration)
    after = settled(sc.pid, base, ("fds", "threads"))
    total = sum(len(v) for v in lat.values())
    add = figures.add
    add(
        "test_load", "clients x duration", f"{CLIENTS} x {duration:.0f} s", "", f"wall {wall:.1f} s"
    )
    add("test_load", "calls completed", total, "calls", f"{total / wall:.0f} per s")
    add("test_load", "errors", len(errors), "", "; ".join(errors[:3]))
    for name in sorted(lat):
        xs = lat[name]
        add(
            "test_load",
            f"{name} latency p50 / p99",
            f"{_pct(xs, 0.5) * 1000:.1f} / {_pct(xs, 0.99) * 1000:.1f}",
            "ms",
            f"{len(xs)} calls; alone p50 {solo.get(name, 0) * 1000:.1f} ms",
        )
    for k in ("rss_kib", "fds", "threads"):
        add("test_load", f"sidecar {k} baseline / after", f"{base[k]} / {after[k]}", "")
    after_log = _log_fds(sc.pid)
    add("test_load", "fds on the followed log baseline / after", f"{base_log_fds} / {after_log}",
        "fds", "the flight recorder's error-burst reader holds one, opened lazily")  # fmt: skip
    assert errors == [], errors[:5]
    assert set(lat) == KINDS, set(lat)
    assert all(len(v) >= 5 for v in lat.values()), {k: len(v) for k, v in lat.items()}
    # gRPC's pool keeps idle workers (it never shrinks) but is capped: threads may sit
    # above the warm-up level, never above the idle process plus the pool's cap.
    cap = idle["threads"] + 64 + SPARE_THREADS
    add("test_load", "sidecar threads idle / pool cap", f"{idle['threads']} / {cap}", "")
    assert after["threads"] <= cap, (idle, base, after)
    assert after["rss_kib"] <= base["rss_kib"] + 64 * 1024, (base, after)
    # Every other fd is back at its baseline.
    assert after["fds"] - after_log <= base["fds"] - base_log_fds, (base, after)
    # On the followed log only the recorder's reader may remain (it opens on its own
    # schedule, so it may appear after the baseline). Found by this test: a second fd
    # appeared whenever the run outlived the recorder's 30 s source rediscovery, which
    # dropped its new reader unclosed (agent/_recorder_watch.py; see test_fds.py).
    assert after_log <= 1, f"{after_log - 1} fd(s) on the followed log outlived the load"
