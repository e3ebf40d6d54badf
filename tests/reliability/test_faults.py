"""Faults during streams: each ends with no line lost or duplicated, a clear error where
one is due, and no stuck stream.

The log follower is a separate client process (``_follower.py``) behind a
loopback TCP proxy the test controls; the app appends ``tick N`` lines to a log
file it reopens per line; the sidecar is a real ``python -m sidecar serve``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from protos import common_pb2, info_pb2, logs_pb2, processes_pb2
from sidecar.sandbox.start import start_sandbox
from tests.conftest import ROOT
from tests.reliability._pod import LOG_PATH, App, Proxy, SidecarProc, canary_app, is_root

pytestmark = [
    pytest.mark.skipif(not is_root(), reason="needs root: chroot, mounts, the sandbox pod"),
    pytest.mark.timeout(180),
]


class Follower:
    """The follower process and what it printed."""

    def __init__(self, address: str, token: str, sid: str, last: int) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.reliability._follower", address, token, sid, str(last)],
            cwd=ROOT, stdout=subprocess.PIPE,
        )  # fmt: skip
        self.ticks: list[int] = []
        self.errors: list[str] = []
        self.notices: list[str] = []
        self._t = threading.Thread(target=self._read, daemon=True)
        self._t.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            d = json.loads(line)
            if "tick" in d:
                self.ticks.append(d["tick"])
            elif "error" in d:
                self.errors.append(d["error"])
            else:
                self.notices.append(d["text"])

    def wait_ticks(self, n: int, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while len(self.ticks) < n:
            assert time.monotonic() < deadline, f"stuck: {len(self.ticks)} ticks, {self.errors}"
            assert self.proc.poll() is None or len(self.ticks) >= n
            time.sleep(0.05)

    def finish(self, timeout: float = 60) -> int:
        rc = self.proc.wait(timeout)
        self._t.join(5)
        return rc


def _source_id(sc: SidecarProc) -> str:
    with sc.client() as c:
        resp = c.logs.ListSources(logs_pb2.ListSourcesRequest(), metadata=c.metadata, timeout=10)
    return next(s.id for s in resp.sources if s.path == LOG_PATH)


def _exactly_once(ticks: list[int]) -> None:
    assert ticks, "nothing arrived"
    dups = len(ticks) - len(set(ticks))
    assert dups == 0, f"{dups} duplicated lines"
    assert ticks == list(range(ticks[0], ticks[-1] + 1)), "a line was lost or reordered"
    assert ticks[0] == 1


@pytest.fixture
def app() -> Iterator[App]:
    with canary_app(interval=0.05) as a:
        yield a


def test_follow_survives_cuts_stop_sidecar_restart_and_rotation(
    app: App, soak: bool, figures: Any
) -> None:
    """One follow across: 3 killed connections, the client SIGSTOPped for 3 s (30 s with
    --soak) then SIGCONTed, the sidecar SIGTERMed and a new one started, the log rotated
    by rename and then by copytruncate. Every tick line arrives exactly once and in
    order; each interruption is a clean UNAVAILABLE the client resumes from; the sidecar
    exits 0 on SIGTERM; the stream is never stuck."""
    settings = [f"local_root={app.pid}", f"log_sources={LOG_PATH}"]
    sc = SidecarProc(settings)
    sc2: SidecarProc | None = None
    proxy = Proxy(sc.address)
    sid = _source_id(sc)
    stop_s = 30.0 if soak else 3.0
    last = 10_000
    f = Follower(proxy.address, sc.token, sid, last)
    try:
        f.wait_ticks(20)
        for _ in range(3):  # 1. connections cut mid-stream
            proxy.kill()
            f.wait_ticks(len(f.ticks) + 10)
        os.kill(f.proc.pid, signal.SIGSTOP)  # 2. a stopped client: the server must not block
        time.sleep(stop_s)
        with sc.client() as c:  # the sidecar still answers others meanwhile
            c.info.GetInfo(info_pb2.GetInfoRequest(), metadata=c.metadata, timeout=5)
        os.kill(f.proc.pid, signal.SIGCONT)
        f.wait_ticks(len(f.ticks) + 10 + int(stop_s / 0.05))
        assert sc.stop(signal.SIGTERM) == 0  # 3. sidecar SIGTERM, then a new one
        sc2 = SidecarProc(settings, token=sc.token, digest=sc.digest)
        proxy.retarget(sc2.address)
        f.wait_ticks(len(f.ticks) + 20)
        log = app.log_host_path  # 4. rotation by rename (the app reopens per line)
        os.rename(log, f"{log}.1")
        f.wait_ticks(len(f.ticks) + 20)
        os.kill(app.pid, signal.SIGSTOP)  # 5. copytruncate, the writer paused around it
        try:
            f.wait_ticks(_count_ticks(log, f"{log}.1"), timeout=10)
            shutil.copyfile(log, f"{log}.2")
            os.truncate(log, 0)
        finally:
            os.kill(app.pid, signal.SIGCONT)
        f.wait_ticks(len(f.ticks) + 20)
        end = f.ticks[-1] + 10
        f.proc.terminate()
        f.finish()
        g = Follower(proxy.address, sc.token, sid, end)  # the tail arrives too
        assert g.finish() == 0
    finally:
        if f.proc.poll() is None:
            f.proc.kill()
        proxy.close()
        sc.stop()
        if sc2 is not None:
            sc2.stop()
    _exactly_once(f.ticks)
    assert set(f.errors) == {"UNAVAILABLE"}, f.errors
    assert len(f.errors) >= 4  # three cuts and the sidecar's shutdown
    figures.add("test_faults", "ticks followed exactly once", len(f.ticks), "lines",
                f"{len(f.errors)} resumes: {', '.join(sorted(set(f.errors)))}")  # fmt: skip
    figures.add(
        "test_faults", "rotation notices seen", len(f.notices), "", "; ".join(f.notices[:3])
    )


def _count_ticks(*paths: str | Path) -> int:
    n = 0
    for p in paths:
        with open(p, "rb") as fh:
            n += fh.read().count(b"tick ")
    return n


def test_app_restart_ends_watch_clearly_and_the_new_pid_is_seen(figures: Any) -> None:
    """The sandbox pod's app is restarted (its PID changes): a WatchProcess stream on the
    old process ends by itself with NOT_FOUND or FAILED_PRECONDITION (no stuck stream),
    GetProcess on the old ref says so, and the new pid is listed in the app container."""
    with start_sandbox("pod", interval=0.5) as sb, sb_client(sb) as c:
        old = sb.app_pid
        ref = common_pb2.ProcessRef(pid=old)
        watch = c.processes.WatchProcess(
            processes_pb2.WatchProcessRequest(ref=ref, interval_ms=250),
            metadata=c.metadata, timeout=30,
        )  # fmt: skip
        next(watch)
        t0 = time.monotonic()
        new = sb.restart_app()
        with pytest.raises(grpc.RpcError) as e:
            for _ in watch:
                pass
        ended = time.monotonic() - t0
        assert e.value.code() in CLEAR_GONE, e.value
        assert new != old
        with pytest.raises(grpc.RpcError) as e2:
            c.processes.GetProcess(
                processes_pb2.GetProcessRequest(ref=ref), metadata=c.metadata, timeout=10
            )
        assert e2.value.code() in CLEAR_GONE
        deadline = time.monotonic() + 15
        while True:
            listing = c.processes.ListProcesses(
                processes_pb2.ListProcessesRequest(), metadata=c.metadata, timeout=10
            )
            if new in {p.ref.pid for p in listing.processes}:
                break
            assert time.monotonic() < deadline, "the new app pid never appeared"
            time.sleep(0.2)
    figures.add("test_faults", "watch stream ended after app restart", ended, "s",
                f"{e.value.code().name}: {e.value.details()}")  # type: ignore[attr-defined]  # fmt: skip


CLEAR_GONE = {grpc.StatusCode.NOT_FOUND, grpc.StatusCode.FAILED_PRECONDITION}


def sb_client(sb: Any) -> Any:
    from tui.client import Client, Target

    c = Client(Target(sb.address, sb.token))
    c.wait_ready(10)
    return c


def test_download_into_a_full_disk_fails_with_one_clear_line(app: App, tmp_path: Path) -> None:
    """``borescope cp`` of a 256 KiB file into a 64 KiB tmpfs exits 1 with one line naming
    the lack of space and the destination (no traceback), removes its partial file (a
    full disk is not left full), and a retry after space is freed completes with the
    right size."""
    dest = tmp_path / "full"
    dest.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(dest)], check=True)
    try:
        with SidecarProc([f"local_root={app.pid}"]) as sc:
            argv = [sys.executable, "-m", "tui.cli.main", "cp", "--addr", sc.address,
                    "--token", sc.token, "-q", "/srv/data/blob.bin", str(dest)]  # fmt: skip
            out = subprocess.run(argv, cwd=ROOT, capture_output=True, timeout=60, check=False)
            err = out.stderr.decode()
            assert out.returncode == 1, (out.returncode, err)
            assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
            assert "no space left on device writing " in err.lower(), err
            assert str(dest / "blob.bin") in err, err
            assert os.listdir(dest) == [], os.listdir(dest)  # the partial file was removed
            subprocess.run(["umount", str(dest)], check=True)
            subprocess.run(
                ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(dest)], check=True
            )
            out = subprocess.run(argv, cwd=ROOT, capture_output=True, timeout=60, check=False)
            assert out.returncode == 0, out.stderr
            assert (dest / "blob.bin").stat().st_size == 256 << 10
    finally:
        subprocess.run(["umount", "-l", str(dest)], check=False)
