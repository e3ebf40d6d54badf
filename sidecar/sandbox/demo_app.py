"""The sandbox pod's demo app: a small shell-less HTTP service with a worker.

Stdlib only: it runs chrooted in a root with an interpreter and nothing else
(installed there as ``/app/main.py``). It

- serves HTTP (``/``, ``/healthz``, ``/slow?ms=N``, ``/error``; ``/crash`` exits
  with code 3 and ``/alloc?mb=N`` holds memory (``/free`` lets go), so a user
  can watch a crash loop, an RSS jump or an OOM kill from the TUI),
- calls itself now and then, so the logs carry a steady mix of info, warning
  and error lines (deterministic, no randomness: tests can rely on the mix),
- runs a worker child process that logs "job" records,
- writes every record as one JSON line (time, level, msg, then fields) to its
  log file AND to stdout; the file is rotated by rename at ``--max-log-bytes``.

The first stdout line is ``{"msg": "serving", "port": N, ...}``: the harness
learns the port from it (``--port 0`` picks a free one).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType
from typing import Any
from urllib.parse import parse_qs, urlparse

DEFAULT_PORT = 8080
DEFAULT_LOG = "/var/log/demo/app.log"
MAX_ALLOC_MB = 384  # above the sandbox's 256 MiB limit (to show an OOM kill), bounded anyway
_held: list[bytearray] = []  # memory /alloc holds on purpose


class JsonLog:
    """Thread-safe JSON-lines logger writing to a file and stdout.

    The file is held open (as most apps do: it shows among the process's open
    files) and reopened when its name no longer points at the open file: the
    other process (api or worker) rotated it. Until it notices, a writer may
    append a line to the rotated file, as real loggers do.
    """

    def __init__(self, path: str, component: str, max_bytes: int) -> None:
        self.path = path
        self.component = component
        self.max_bytes = max_bytes
        self.lock = threading.Lock()
        self.fd = -1

    def write(self, level: str, msg: str, **fields: Any) -> None:
        now = time.time()
        stamp = (
            time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1000):03d}Z"
        )
        record = {"time": stamp, "level": level, "msg": msg, "component": self.component}
        record.update(fields)
        line = json.dumps(record, separators=(",", ":")) + "\n"
        with self.lock:
            self._rotate_if_needed()
            self._reopen_if_moved()
            os.write(self.fd, line.encode())  # O_APPEND: one write per line, never torn
            sys.stdout.write(line)
            sys.stdout.flush()

    def _reopen_if_moved(self) -> None:
        try:
            current = os.stat(self.path).st_ino
        except FileNotFoundError:
            current = -1
        if self.fd >= 0 and current == os.fstat(self.fd).st_ino:
            return
        if self.fd >= 0:
            os.close(self.fd)
        self.fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)

    def _rotate_if_needed(self) -> None:
        try:
            if os.stat(self.path).st_size < self.max_bytes:
                return
        except FileNotFoundError:
            return
        try:
            os.replace(self.path, self.path + ".1")
        except FileNotFoundError:
            return  # the other process rotated it first


class Handler(BaseHTTPRequestHandler):
    """The HTTP API; every request is one log record."""

    server_version = "demo-app/1.0"
    log: JsonLog

    def do_GET(self) -> None:
        started = time.monotonic()
        url = urlparse(self.path)
        status, body = self._route(url.path, parse_qs(url.query))
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        ms = round((time.monotonic() - started) * 1000, 1)
        level = "error" if status >= 500 else "warning" if ms >= 200 else "info"
        self.log.write(level, "request", method="GET", path=url.path, status=status, ms=ms)

    def _route(self, path: str, query: dict[str, list[str]]) -> tuple[int, dict[str, Any]]:
        if path == "/":
            return 200, {"service": "demo-app", "pid": os.getpid()}
        if path == "/healthz":
            return 200, {"status": "ok"}
        if path == "/slow":
            ms = min(int(query.get("ms", ["250"])[0] or 250), 5000)
            time.sleep(ms / 1000)
            return 200, {"slept_ms": ms}
        if path == "/crash":
            # Answer first, then die: a crash-looping pod to watch from the TUI.
            self.log.write("fatal", "crashing on request", exit_code=3)
            threading.Timer(0.1, os._exit, args=(3,)).start()
            return 500, {"error": "crashing"}
        if path == "/alloc":
            return self._alloc(int(query.get("mb", ["64"])[0] or 64))
        if path == "/free":
            _held.clear()
            self.log.write("info", "memory released")
            return 200, {"held_mb": 0}
        if path == "/error":
            self.log.write(
                "error", "database query failed", error="connection refused", db="orders"
            )
            return 500, {"error": "internal"}
        return 404, {"error": "not found"}

    def _alloc(self, mb: int) -> tuple[int, dict[str, Any]]:
        """Hold ``mb`` more MiB (touched, so it is resident): RSS jumps, or the OOM killer comes."""
        held = sum(len(b) for b in _held) >> 20
        mb = max(0, min(mb, MAX_ALLOC_MB - held))
        self.log.write("warning", "allocating memory", mb=mb, held_mb=held + mb)
        _held.append(bytearray(b"\x01" * (mb << 20)))
        return 200, {"held_mb": held + mb}

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the stdlib's access log: every request is already a JSON record."""


def traffic(port: int, log: JsonLog, stop: threading.Event, interval: float) -> None:
    """Call our own endpoints in a fixed pattern: mostly fine, some slow, a few errors."""
    pattern = ["/", "/healthz", "/", "/slow?ms=250", "/", "/healthz", "/", "/error"]
    n = 0
    while not stop.wait(interval):
        path = pattern[n % len(pattern)]
        n += 1
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
                r.read()
        except urllib.error.HTTPError:
            pass  # a 500 from /error is the point of calling it
        except OSError as e:
            log.write("warning", "self-check failed", path=path, error=str(e))


def run_worker(log: JsonLog, interval: float) -> int:
    """The worker child: processes "jobs" until its parent goes away."""
    parent = os.getppid()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    job = 0
    while os.getppid() == parent:
        job += 1
        if job % 7 == 0:
            log.write("warning", "job retried", job=job, attempt=2)
        else:
            log.write("info", "job done", job=job, items=job % 5 + 1)
        time.sleep(interval * 2)
    return 0


def run_server(args: argparse.Namespace, log: JsonLog) -> int:
    """Serve HTTP, start the worker and the self-traffic, until SIGTERM/SIGINT."""
    Handler.log = log
    server = ThreadingHTTPServer((args.bind, args.port), Handler)
    server.daemon_threads = True
    port = server.server_address[1]
    argv = [sys.executable or "demo-app", "-I", os.path.abspath(__file__), "--worker"]
    # Our own binary by its path (so the worker's comm is the binary's name from
    # the start); through /proc/self/exe when we were started without a usable
    # path (local mode runs us that way).
    exe = sys.executable if os.path.isabs(sys.executable) else "/proc/self/exe"
    worker = subprocess.Popen(
        [*argv, *_common_args(args)],
        executable=exe,
        stdin=subprocess.DEVNULL,
    )
    # Logged once the worker runs: the harness treats this line as "started".
    log.write("info", "serving", port=port, pid=os.getpid(), uid=os.getuid(), worker=worker.pid)
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.write("info", "shutting down", signal=signal.Signals(signum).name)
        stop.set()
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    threading.Thread(
        target=traffic, args=(port, log, stop, args.interval), daemon=True, name="traffic"
    ).start()
    server.serve_forever(poll_interval=0.2)
    server.server_close()
    worker.terminate()
    worker.wait(5)
    return 0


def _common_args(args: argparse.Namespace) -> list[str]:
    return [
        "--log-file",
        args.log_file,
        "--interval",
        str(args.interval),
        "--max-log-bytes",
        str(args.max_log_bytes),
    ]


def name_process(name: str) -> None:
    """Set our comm (what ps shows) when the binary's name is not the app's, e.g. /proc/self/exe."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(15, name.encode()[:15], 0, 0, 0)  # PR_SET_NAME
    except (ImportError, OSError):
        pass  # cosmetic: the app works the same under another name


def main(argv: list[str] | None = None) -> int:
    name_process("demo-app")
    p = argparse.ArgumentParser(prog="demo-app")
    p.add_argument("--port", type=int, default=DEFAULT_PORT)
    p.add_argument("--bind", default="0.0.0.0")  # noqa: S104 - the pod's own network namespace
    p.add_argument("--log-file", default=DEFAULT_LOG)
    p.add_argument("--interval", type=float, default=1.0, help="seconds between self-calls")
    p.add_argument("--max-log-bytes", type=int, default=5 << 20)
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    component = "worker" if args.worker else "api"
    log = JsonLog(args.log_file, component, args.max_log_bytes)
    if args.worker:
        return run_worker(log, args.interval)
    return run_server(args, log)


if __name__ == "__main__":
    sys.exit(main())
