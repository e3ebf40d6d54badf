"""A hostile container root, and a real process chrooted into it.

The tree is built to trick a careless file reader into leaving the root:
absolute and relative symlinks to a canary that exists only on the host,
``..`` chains, loops, /proc magic links, FIFOs and devices, a sparse 10 GiB
file, names with newlines and terminal escapes, a 10k-entry directory,
200 levels of nesting, a service-account token and a Secret mount.

``hostile_target()`` starts a process in its own mount namespace (so the
mounts exist only there) chrooted into the tree: ``/proc/PID/root`` is then
the tree, exactly as a container's root is for the sidecar.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from protos import common_pb2
from sidecar.config import Config
from tests.conftest import Running, start_sidecar

SA_DIR = "var/run/secrets/kubernetes.io/serviceaccount"
SECRET_DIR = "etc/app-secret"
DEEP_LEVELS = 200
BIG_ENTRIES = 10_000
SPARSE_SIZE = 10 << 30
HOSTILE_NAMES = (
    b"new\nline",
    b"\x1b[31mred\x1b[0m",
    b"\x1b]0;pwned title\x07",
    b"bad-utf8-\xff\xfe",
    b"tab\there",
    b"  spaces  ",
)


@dataclass
class Hostile:
    """The tree and its canaries.

    Attributes:
        root: host path of the container root.
        host_dir: host-only directory holding the canary (never inside root).
        canary: bytes that must never come back from any call.
        sa_token, secret: canaries behind the sensitive mounts (only mounted
            inside a ``hostile_target`` process).
    """

    root: Path
    host_dir: Path
    canary: bytes
    sa_token: bytes
    secret: bytes

    def all_canaries(self) -> tuple[bytes, ...]:
        return (self.canary, self.sa_token, self.secret)


def build(base: Path | None = None) -> Hostile:
    """Create the hostile tree under ``base`` (default: a fresh directory in /dev/shm).

    tmpfs makes the 10k-entry directory cheap to build (seconds on a busy disk).
    """
    if base is None:
        shm = "/dev/shm" if os.path.isdir("/dev/shm") else None
        base = Path(tempfile.mkdtemp(prefix="borescope-hostile-", dir=shm))
    tag = uuid.uuid4().hex[:12]
    host_dir = Path(tempfile.mkdtemp(prefix="borescope-canary-"))
    canary = f"CANARY-HOST-{tag}".encode()
    (host_dir / "secret.txt").write_bytes(canary)
    (host_dir / "f").write_bytes(canary)
    (host_dir / "passwd").write_bytes(canary)
    r = base / "root"
    for d in ("etc", "app", "tmp", "proc", "sys", "names", "big", "race/a", SA_DIR, SECRET_DIR):
        (r / d).mkdir(parents=True, exist_ok=True)
    (r / "etc/passwd").write_bytes(b"root:x:0:0::/:/nonexistent\napp:x:1000:1000::/app:/x\n")
    (r / "etc/group").write_bytes(b"root:x:0:\napp:x:1000:\n")
    (r / "etc/hostname").write_bytes(b"hostile-root\n")
    (r / "app/ok.txt").write_bytes(b"inside-ok\n")
    (r / "race/a/f").write_bytes(b"race-safe\n")
    links = {
        "abs_canary": str(host_dir / "secret.txt"),
        "rel_canary": "../" * 30 + str(host_dir / "secret.txt").lstrip("/"),
        "dir_abs": str(host_dir),
        "loop_a": "loop_b",
        "loop_b": "loop_a",
        "self_loop": "self_loop",
        "proc_self_root": "/proc/self/root",
        "proc_self_root_canary": "/proc/self/root" + str(host_dir / "secret.txt"),
        "proc_1_root": "/proc/1/root/etc/hostname",
        "proc_self_cwd": "/proc/self/cwd",
        "etc_link": "/etc",
        "dotdot": "../../../..",
        "race/b": str(host_dir),
        "sa_link": "/" + SA_DIR + "/token",
    }
    for name, target in links.items():
        os.symlink(target, r / name)
    # A chain of 45 links: more than the 40 any resolver follows.
    for i in range(45):
        os.symlink(f"chain{i + 1}", r / f"chain{i}")
    (r / "chain45").write_bytes(b"end of chain\n")
    os.mkfifo(r / "fifo")
    os.mknod(r / "null", 0o666 | 0o020000, os.makedev(1, 3))
    os.mknod(r / "zero", 0o666 | 0o020000, os.makedev(1, 5))
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(r / "sock"))
    s.close()
    with open(r / "sparse", "wb") as f:
        f.truncate(SPARSE_SIZE)
    for raw in HOSTILE_NAMES:
        with open(os.fsencode(r / "names") + b"/" + raw, "wb") as f:
            f.write(raw)
    big = r / "big"
    for i in range(BIG_ENTRIES):
        os.close(os.open(big / f"f{i:05d}", os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o644))
    deep = r
    for _ in range(DEEP_LEVELS):
        deep = deep / "d"
    deep.mkdir(parents=True)
    (deep / "bottom.txt").write_bytes(b"bottom\n")
    return Hostile(r, host_dir, canary, f"SA-TOKEN-{tag}".encode(), f"SECRET-{tag}".encode())


def cleanup(h: Hostile) -> None:
    shutil.rmtree(h.root.parent, ignore_errors=True)
    shutil.rmtree(h.host_dir, ignore_errors=True)


_CHILD = (
    "import os,sys; os.chroot(sys.argv[1]); os.chdir('/'); "
    "sys.stdout.write('ready\\n'); sys.stdout.flush(); sys.stdin.read()"
)


@contextmanager
def hostile_target(h: Hostile) -> Iterator[int]:
    """A process chrooted into ``h.root`` in its own mount namespace; yields its pid.

    Inside that namespace only: /proc and /sys are mounted, a tmpfs holds
    the service-account token, and a read-only tmpfs holds a Secret.
    """
    r = str(h.root)
    script = f"""set -e
mount -t proc proc {r}/proc
mount -t sysfs sysfs {r}/sys
mount -t tmpfs -o size=1m tmpfs {r}/{SA_DIR}
printf %s '{h.sa_token.decode()}' > {r}/{SA_DIR}/token
mount -o remount,ro {r}/{SA_DIR}
mount -t tmpfs -o size=1m tmpfs {r}/{SECRET_DIR}
printf %s '{h.secret.decode()}' > {r}/{SECRET_DIR}/password
mount -o remount,ro {r}/{SECRET_DIR}
exec {sys.executable} -c "{_CHILD}" {r}
"""
    p = subprocess.Popen(
        ["unshare", "-m", "--propagation", "private", "sh", "-c", script],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    try:
        assert p.stdout is not None
        line = p.stdout.readline()
        if line != b"ready\n":
            raise RuntimeError(f"hostile target did not start: {line!r}")
        yield p.pid
    finally:
        if p.stdin is not None:
            p.stdin.close()
        try:
            p.wait(5)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def is_root() -> bool:
    return os.geteuid() == 0


class Target:
    """A running sidecar whose app container is a process chrooted into a hostile tree."""

    def __init__(self, h: Hostile, pid: int, running: Running) -> None:
        self.h = h
        self.pid = pid
        self.r = running
        self.sel = common_pb2.ContainerSelector(id=f"local-{pid}")

    @property
    def kw(self) -> dict[str, object]:
        return {"metadata": self.r.client.metadata, "timeout": 10}


@pytest.fixture(scope="module")
def sidecar_target() -> Iterator[Target]:
    """A sidecar whose app container is a process chrooted into the hostile tree."""
    h = build()
    try:
        with hostile_target(h) as pid:
            r = start_sidecar(Config(local_root=pid))
            try:
                yield Target(h, pid, r)
            finally:
                r.client.close()
                r.sidecar.stop(0)
    finally:
        cleanup(h)
