"""Download throughput: borescope cp over loopback gRPC vs ``cat FILE | cat > /dev/null``.

A real sidecar process (``python -m sidecar serve``, local mode, the target
being a sleeper in this mount namespace) serves a 1 GiB random file. The
subject is the full client path of ``borescope cp``: Download stream, write
to a part file, sha256 of every byte on both sides, compare, rename. The
anchor is a shell pipe reading the same (page-cached) file. Both run
alternately in the same run; the medians and their ratio are printed
(goal: >= 1.2x the pipe's throughput). ``--quick`` uses 256 MiB.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent import futures
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks._sidecar import start_sidecar  # noqa: E402
from tui.client import Client, Target  # noqa: E402
from tui.transfer import download  # noqa: E402

GOAL = 1.2


def make_file(path: Path, size: int) -> str:
    """Write ``size`` random bytes; returns their sha256."""
    h = hashlib.sha256()
    block = os.urandom(1 << 20)
    with open(path, "wb") as f:
        for i in range(size >> 20):
            # Vary each MiB so no chunk repeats (compression or dedup cannot help).
            b = i.to_bytes(8, "little") + block[8:]
            f.write(b)
            h.update(b)
    return h.hexdigest()


def time_pipe(path: Path) -> float:
    t = time.perf_counter()
    subprocess.run(f"cat '{path}' | cat > /dev/null", shell=True, check=True)
    return time.perf_counter() - t


def time_bare_grpc(size: int) -> float:
    """Context, not the anchor: a bare grpcio stream of 1 MiB bytes messages, no file, no hash."""
    import grpc

    chunk = os.urandom(1 << 20)
    n = size >> 20

    def handler(_req: bytes, _ctx: object) -> object:
        for _ in range(n):
            yield chunk

    server = grpc.server(
        futures.ThreadPoolExecutor(2), options=[("grpc.max_send_message_length", 8 << 20)]
    )
    rpc = grpc.unary_stream_rpc_method_handler(handler)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("b.B", {"S": rpc}),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        channel = grpc.insecure_channel(
            f"127.0.0.1:{port}", options=[("grpc.max_receive_message_length", 8 << 20)]
        )
        call = channel.unary_stream("/b.B/S")
        t = time.perf_counter()
        got = sum(len(m) for m in call(b""))
        elapsed = time.perf_counter() - t
        channel.close()
        assert got == size
        return elapsed
    finally:
        server.stop(0)


def time_download(client: Client, container: str, remote: str, dest: Path, want: str) -> float:
    t = time.perf_counter()
    res = download(client, remote, str(dest), container=container, resume=False)
    elapsed = time.perf_counter() - t
    if res.sha256 != want:
        raise RuntimeError("downloaded bytes differ from the file")
    os.unlink(res.path)
    return elapsed


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="256 MiB and 3 runs")
    p.add_argument("--runs", type=int, default=0)
    args = p.parse_args(argv)
    size = (256 if args.quick else 1024) << 20
    runs = args.runs or (3 if args.quick else 5)
    work = Path(tempfile.mkdtemp(prefix="bench-download-"))
    # The copy lands in memory-backed /dev/shm when there is one: the figure is the
    # transfer, not the local disk's write speed (the anchor writes to /dev/null).
    dest = Path(
        tempfile.mkdtemp(
            prefix="bench-download-dest-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None
        )
    )
    app = subprocess.Popen(["sleep", "3600"], stdin=subprocess.DEVNULL)
    sidecar = None
    try:
        src = work / "blob.bin"
        want = make_file(src, size)
        sidecar, address, token = start_sidecar(work / "sidecar.log", f"local_root={app.pid}")
        client = Client(Target(address, token))
        client.wait_ready(10)
        container = f"local-{app.pid}"
        time_pipe(src)  # warm the page cache for both
        time_download(client, container, str(src), dest, want)
        subject: list[float] = []
        anchor: list[float] = []
        for _ in range(runs):
            anchor.append(time_pipe(src))
            subject.append(time_download(client, container, str(src), dest, want))
        client.close()
        bare = statistics.median(time_bare_grpc(size) for _ in range(3))
        mib = size / (1 << 20)
        s_rate = mib / statistics.median(subject)
        a_rate = mib / statistics.median(anchor)
        ratio = s_rate / a_rate
        print(
            f"download {mib:.0f} MiB (sha256 verified): {s_rate:.0f} MiB/s | "
            f"anchor cat|cat: {a_rate:.0f} MiB/s | ratio: {ratio:.2f}x (goal: >= {GOAL}x)"
        )
        print(
            f"  context: bare grpcio stream (1 MiB messages from memory, in-process, no file, "
            f"no hash): {mib / bare:.0f} MiB/s = {mib / bare / a_rate:.2f}x the pipe"
        )
        print(
            f"  runs (s): subject {[round(x, 3) for x in subject]} anchor {[round(x, 3) for x in anchor]}"
        )
        return 0
    finally:
        if sidecar is not None:
            sidecar.terminate()
            try:
                sidecar.wait(10)
            except subprocess.TimeoutExpired:
                sidecar.kill()
                sidecar.wait()
        app.kill()
        app.wait()
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(dest, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
