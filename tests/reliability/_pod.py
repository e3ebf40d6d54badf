"""Real targets and real sidecar processes for the reliability suite.

``canary_app`` starts an app chrooted into a small root in its own mount
namespace (like a container): canaries in its env, its argv, a read-only
tmpfs "Secret" mount and a log line; it appends a numbered line to its log
every ``interval`` seconds. ``SidecarProc`` is a real ``python -m sidecar
serve`` whose stdout (the audit log) is captured, so RSS, fds and threads can
be read from /proc and the process can be SIGTERMed.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tests.conftest import ROOT, new_token
from tui.client import Client, Target

SECRET_DIR = "etc/app-secret"
LOG_PATH = "/var/log/app/app.log"

_CHILD = r"""
import os, sys, threading, time
root, interval = sys.argv[1], float(sys.argv[2])
os.chroot(root); os.chdir('/')
def log(line):
    # Opened per line, like a logger that reopens after rotation: after a rename the
    # next line goes to a fresh file at the path.
    with open('/var/log/app/app.log', 'a') as f:
        f.write(line + '\n')
log('{"level":"info","msg":"started","token":"%s"}' % os.environ['LOG_CANARY'])
done = threading.Event()
threading.Thread(target=lambda: (sys.stdin.read(), done.set()), daemon=True).start()
sys.stdout.write('ready\n'); sys.stdout.flush()
i = 0
while not done.wait(interval):
    i += 1
    log('{"level":"info","msg":"tick %d"}' % i)
"""


@dataclass
class Canaries:
    """The secrets the app carries; each must stay hidden unless its switch is on."""

    env: str
    argv: str
    file: str
    log: str

    @classmethod
    def make(cls) -> Canaries:
        tag = uuid.uuid4().hex[:10]
        return cls(f"cEnv{tag}", f"cArgv{tag}", f"cFile{tag}", f"cLog{tag}")

    def hidden(self) -> dict[str, str]:
        """The canaries no response may carry by default (the log line may be read)."""
        return {"env": self.env, "argv": self.argv, "file": self.file}


@dataclass
class App:
    """A running canary app: its host pid, root dir and canaries."""

    pid: int
    root: Path
    canaries: Canaries
    proc: subprocess.Popen[bytes] = field(repr=False)

    @property
    def container_id(self) -> str:
        return f"local-{self.pid}"

    @property
    def log_host_path(self) -> Path:
        return self.root / LOG_PATH.lstrip("/")


@contextmanager
def canary_app(interval: float = 0.2, canaries: Canaries | None = None) -> Iterator[App]:
    """Start the canary app (root needed: unshare, chroot, mounts); yield it; clean up."""
    c = canaries or Canaries.make()
    base = Path(tempfile.mkdtemp(prefix="borescope-rel-", dir="/dev/shm"))
    r = base / "root"
    for d in ("etc", "proc", "tmp", "var/log/app", "srv/data", SECRET_DIR):
        (r / d).mkdir(parents=True, exist_ok=True)
    (r / "etc/hostname").write_text("canary-app\n")
    (r / "etc/passwd").write_text("root:x:0:0::/:/nonexistent\n")
    (r / "srv/data/blob.bin").write_bytes(os.urandom(256 << 10))
    (r / "srv/data/readme.txt").write_text("hello from the app\n")
    script = f"""set -e
mount -t proc proc {r}/proc
mount -t tmpfs -o size=1m tmpfs {r}/{SECRET_DIR}
printf %s '{c.file}' > {r}/{SECRET_DIR}/password
mount -o remount,ro {r}/{SECRET_DIR}
exec {sys.executable} -c "$CHILD" {r} {interval} --db-password={c.argv}
"""
    env = {
        "PATH": "/usr/bin:/bin",
        "CHILD": _CHILD,
        "DB_PASSWORD": c.env,
        "LOG_CANARY": c.log,
    }
    p = subprocess.Popen(
        ["unshare", "-m", "--propagation", "private", "sh", "-c", script],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=env,
    )
    try:
        assert p.stdout is not None
        line = p.stdout.readline()
        if line != b"ready\n":
            raise RuntimeError(f"canary app did not start: {line!r}")
        yield App(p.pid, r, c, p)
    finally:
        if p.stdin is not None:
            p.stdin.close()
        try:
            p.wait(5)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
        shutil.rmtree(base, ignore_errors=True)


class SidecarProc:
    """A real ``python -m sidecar serve`` on 127.0.0.1:0 with its stdout captured."""

    def __init__(self, settings: Sequence[str], token: str = "", digest: str = "") -> None:
        if not token:
            token, digest = new_token()
        self.token, self.digest = token, digest
        self.settings = list(settings)
        self.lines: list[bytes] = []
        env = {"PATH": os.environ["PATH"], "BORESCOPE_TOKEN_SHA256": digest}
        argv = [sys.executable, "-m", "sidecar", "serve", "--listen", "127.0.0.1:0"]
        for kv in self.settings:
            argv += ["--set", kv]
        self.proc = subprocess.Popen(
            argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        assert self.proc.stdout is not None
        self.address = ""
        deadline = time.monotonic() + 30
        for line in self.proc.stdout:
            self.lines.append(line)
            if line.startswith(b"listening on "):
                self.address = line.decode().split()[-1]
                break
            if time.monotonic() > deadline:
                break
        if not self.address:
            self.proc.kill()
            raise RuntimeError(f"sidecar did not start: {b''.join(self.lines)[-2000:]!r}")
        self._reader = threading.Thread(target=self._drain, daemon=True)
        self._reader.start()

    def _drain(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def output(self) -> bytes:
        """Everything the sidecar printed so far (its audit records included)."""
        return b"".join(self.lines)

    def client(self) -> Client:
        c = Client(Target(self.address, self.token))
        c.wait_ready(10)
        return c

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> int:
        """Stop the sidecar; return its exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._reader.join(5)
        return self.proc.returncode

    def __enter__(self) -> SidecarProc:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def usage(pid: int) -> dict[str, int]:
    """RSS (KiB), open fds and threads of a process, from /proc."""
    status = Path(f"/proc/{pid}/status").read_text()
    rss = next(int(x.split()[1]) for x in status.splitlines() if x.startswith("VmRSS:"))
    threads = next(int(x.split()[1]) for x in status.splitlines() if x.startswith("Threads:"))
    return {"rss_kib": rss, "fds": len(os.listdir(f"/proc/{pid}/fd")), "threads": threads}


def is_root() -> bool:
    return os.geteuid() == 0


class Proxy:
    """A loopback TCP proxy whose connections the test cuts, and whose target it can move
    (a restarted sidecar listens on a new port); a refused upstream closes that client."""

    def __init__(self, target: str) -> None:
        self.target = _hostport(target)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.conns: list[socket.socket] = []
        self.lock = threading.Lock()
        self.kills = 0
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def retarget(self, target: str) -> None:
        self.target = _hostport(target)

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
                upstream.settimeout(None)
            except OSError:
                client.close()  # the sidecar is restarting: the client retries
                continue
            with self.lock:
                self.conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass  # the test cut this connection
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)

    def kill(self) -> None:
        """Cut every open connection with an RST."""
        with self.lock:
            conns, self.conns = self.conns, []
        for s in conns:
            with contextlib.suppress(OSError):
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                s.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                s.close()
        self.kills += 1

    def close(self) -> None:
        self.listener.close()
        self.kill()


def _hostport(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host, int(port)
