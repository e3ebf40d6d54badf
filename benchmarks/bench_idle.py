"""Idle footprint: the sidecar (recorder sampling every 2 s) vs a bare grpcio health server.

Starts, side by side in the same run:

* subject: the sidecar (``python -m sidecar serve``, token auth, recorder every
  2 s). As root it is the sandbox pod's sidecar (a real pod: pause, a quiet
  shell-less app, shared PID/network namespaces; ``--local`` to skip); else
  local mode watching a ``sleep`` (its scans then cover the whole host's
  /proc, so its CPU is an overestimate of a pod's);
* anchor: a bare ``grpc.server`` with only grpc.health.v1 on loopback.

After ``--seconds`` (60; ``--quick`` 15) of idling it reads, from outside
(``/proc/PID/status`` VmRSS and ``/proc/PID/stat`` utime+stime), each
server's RSS and its CPU use over the idle window (after a short settle), and
prints the medians of ``--runs`` runs (the ratio: the median of the per-run ratios):

    idle_rss: X MiB | anchor: Y MiB | ratio: R (goal: <= 1.1)
    idle_cpu: X % of a core | anchor: Y % | (goal: <= 0.5 %)

and, for information, the anonymous/file-backed split of both RSS figures
(file-backed pages of shared libraries vary by ~1 MiB between runs, alike in
both processes), and the sidecar's RSS once every service has served one call
(services other than Events load their modules on first call; that figure is
after the idle measurement, so it does not disturb it).
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
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CLK_TCK = os.sysconf("SC_CLK_TCK")
SETTLE_S = 3.0

ANCHOR = r"""
from concurrent import futures
import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
h = health.HealthServicer(experimental_non_blocking=True)
health_pb2_grpc.add_HealthServicer_to_server(h, server)
h.set("", health_pb2.HealthCheckResponse.SERVING)
port = server.add_insecure_port("127.0.0.1:0")
server.start()
print(f"listening on 127.0.0.1:{port}", flush=True)
server.wait_for_termination()
"""


def rss_bytes(pid: int) -> int:
    """Resident set size from /proc/PID/status (VmRSS, kB)."""
    return rss_parts(pid)["VmRSS"]


def rss_parts(pid: int) -> dict[str, int]:
    """VmRSS, RssAnon and RssFile of the process from /proc/PID/status, in bytes."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key = line.split(":", 1)[0]
        if key in ("VmRSS", "RssAnon", "RssFile"):
            out[key] = int(line.split()[1]) * 1024
    if "VmRSS" not in out:
        raise RuntimeError(f"no VmRSS for {pid}")
    return out


def cpu_seconds(pid: int) -> float:
    """utime + stime of the process (all its threads), in seconds."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def wait_listening(p: subprocess.Popen[bytes], what: str) -> str:
    assert p.stdout is not None
    for line in p.stdout:
        if line.startswith(b"listening on"):
            return line.decode().split()[-1]
    raise RuntimeError(f"{what} did not start (exit {p.wait()})")


def recorder_running(address: str, token: str) -> str:
    """ "" when the sidecar's recorder answers (Events.GetSamples), else why not."""
    import grpc

    from protos import events_pb2, events_pb2_grpc

    with grpc.insecure_channel(address) as ch:
        try:
            events_pb2_grpc.EventsStub(ch).GetSamples(
                events_pb2.GetSamplesRequest(),
                metadata=(("authorization", f"Bearer {token}"),),
                timeout=10,
            )
        except grpc.RpcError as e:
            return f"{e.code().name}: {e.details()}"
    return ""


def touch_services(address: str, token: str) -> str:
    """One call to every service the sidecar loads on first call; "" or what failed."""
    import grpc
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    from protos import (
        files_pb2,
        files_pb2_grpc,
        info_pb2,
        info_pb2_grpc,
        logs_pb2,
        logs_pb2_grpc,
        network_pb2,
        network_pb2_grpc,
        processes_pb2,
        processes_pb2_grpc,
    )

    kw: dict[str, Any] = {"metadata": (("authorization", f"Bearer {token}"),), "timeout": 10}
    ask = reflection_pb2.ServerReflectionRequest(list_services="")
    calls: list[tuple[str, Any]] = [
        ("Info", lambda ch: info_pb2_grpc.InfoStub(ch).GetInfo(info_pb2.GetInfoRequest(), **kw)),
        ("Processes", lambda ch: processes_pb2_grpc.ProcessesStub(ch).ListProcesses(
            processes_pb2.ListProcessesRequest(), **kw)),
        ("Files", lambda ch: files_pb2_grpc.FilesStub(ch).Stat(
            files_pb2.StatRequest(path="/"), **kw)),
        ("Network", lambda ch: network_pb2_grpc.NetworkStub(ch).ListInterfaces(
            network_pb2.ListInterfacesRequest(), **kw)),
        ("Logs", lambda ch: logs_pb2_grpc.LogsStub(ch).ListSources(
            logs_pb2.ListSourcesRequest(), **kw)),
        ("Reflection", lambda ch: list(reflection_pb2_grpc.ServerReflectionStub(
            ch).ServerReflectionInfo(iter([ask]), **kw))),
    ]  # fmt: skip
    failed = []
    with grpc.insecure_channel(address) as ch:
        for name, call in calls:
            try:
                call(ch)
            except grpc.RpcError as e:
                failed.append(f"{name}: {e.code().name}")
    return "; ".join(failed)


RECORDER: list[str] = []
TOUCHED: list[str] = []


class Subject:
    """The sidecar under test: its host pid, address and token; ``close()`` ends it."""

    def __init__(self, pod: bool, seconds: float) -> None:
        self._procs: list[subprocess.Popen[bytes]] = []
        self._sandbox: Any = None
        if pod:
            sys.path.insert(0, str(ROOT))
            from sidecar.sandbox.start import start_sandbox

            # A quiet app (one self-call an hour): idle means idle.
            self._sandbox = start_sandbox(
                "pod", interval=3600.0, settings=("recorder_interval_s=2",)
            )
            self.pid = int(self._sandbox.sidecar_host_pid)
            self.address = str(self._sandbox.address)
            self.token = str(self._sandbox.token)
            return
        app = subprocess.Popen(["sleep", str(int(seconds) + 120)])
        self._procs.append(app)
        self.token = secrets.token_urlsafe(24)
        digest = hashlib.sha256(self.token.encode()).hexdigest()
        env = {"PATH": os.environ["PATH"], "BORESCOPE_TOKEN_SHA256": digest}
        p = subprocess.Popen(
            [sys.executable, "-m", "sidecar", "serve", "--listen", "127.0.0.1:0",
             "--set", f"local_root={app.pid}", "--set", "recorder_interval_s=2"],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        self._procs.append(p)
        self.address = wait_listening(p, "the sidecar")
        self.pid = p.pid

    def close(self) -> None:
        if self._sandbox is not None:
            self._sandbox.close()
        stop_all(self._procs)


def stop_all(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        p.terminate()
    for p in procs:
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def one_run(seconds: float, pod: bool) -> tuple[int, int, float, float, int, int, int, int, int]:
    """(subject rss, anchor rss, subject cpu %, anchor cpu %, subject anon, subject file,
    anchor anon, anchor file, subject rss after one call to every service) after
    ``seconds`` idle."""
    anchor = subprocess.Popen(
        [sys.executable, "-c", ANCHOR], cwd=ROOT, stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    subject: Subject | None = None
    try:
        subject = Subject(pod, seconds)
        wait_listening(anchor, "the anchor")
        time.sleep(SETTLE_S)  # start-up work is not idle work
        t0 = time.monotonic()
        c0 = cpu_seconds(subject.pid), cpu_seconds(anchor.pid)
        time.sleep(max(0.0, seconds - SETTLE_S))
        elapsed = time.monotonic() - t0
        c1 = cpu_seconds(subject.pid), cpu_seconds(anchor.pid)
        sub, anc = rss_parts(subject.pid), rss_parts(anchor.pid)
        # After measuring, so the checks do not disturb the idle window.
        RECORDER.append(recorder_running(subject.address, subject.token))
        TOUCHED.append(touch_services(subject.address, subject.token))
        time.sleep(SETTLE_S)
        return (
            sub["VmRSS"],
            anc["VmRSS"],
            100.0 * (c1[0] - c0[0]) / elapsed,
            100.0 * (c1[1] - c0[1]) / elapsed,
            sub["RssAnon"],
            sub["RssFile"],
            anc["RssAnon"],
            anc["RssFile"],
            rss_bytes(subject.pid),
        )
    finally:
        if subject is not None:
            subject.close()
        stop_all([anchor])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="15 s idle instead of 60 s")
    ap.add_argument("--seconds", type=float, default=None, help="idle time per run")
    ap.add_argument("--runs", type=int, default=3, help="runs (median reported)")
    ap.add_argument("--local", action="store_true", help="local mode even as root (no sandbox pod)")
    args = ap.parse_args(argv)
    seconds = args.seconds or (15.0 if args.quick else 60.0)
    pod = os.geteuid() == 0 and not args.local
    results = [one_run(seconds, pod) for _ in range(args.runs)]
    s_rss, a_rss = (statistics.median(r[i] for r in results) / 2**20 for i in (0, 1))
    # Each run's ratio pairs the two processes of that run (same page cache, same load).
    ratio = statistics.median(r[0] / r[1] for r in results)
    s_cpu, a_cpu = (statistics.median(r[i] for r in results) for i in (2, 3))
    s_anon, s_file, a_anon, a_file, used = (
        statistics.median(r[i] for r in results) / 2**20 for i in (4, 5, 6, 7, 8)
    )
    off = [r for r in RECORDER if r]
    recorder = "on, every 2 s" if not off else f"NOT running in {len(off)} run(s): {off[0]}"
    mode = "sandbox pod" if pod else "local mode"
    print(f"(idle {seconds:g} s, {args.runs} runs, medians; {mode}; recorder {recorder})")
    print(
        f"idle_rss: {s_rss:.1f} MiB | anchor: {a_rss:.1f} MiB | ratio: {ratio:.3f} "
        f"{'within' if ratio <= 1.1 else 'OVER'} goal (goal: <= 1.1)"
    )
    print(
        f"idle_cpu: {s_cpu:.2f} % of a core | anchor: {a_cpu:.2f} % | "
        f"{'within' if s_cpu <= 0.5 else 'OVER'} goal (goal: <= 0.5 %)"
    )
    print(
        f"  rss split: sidecar anon {s_anon:.1f} + file {s_file:.1f} MiB | "
        f"anchor anon {a_anon:.1f} + file {a_file:.1f} MiB"
    )
    bad = [t for t in TOUCHED if t]
    calls = "every call answered" if not bad else f"FAILED in {len(bad)} run(s): {bad[0]}"
    print(
        f"  after one call to every service (not idle; for information): {used:.1f} MiB, "
        f"{used / a_rss:.2f}x the anchor ({calls})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
