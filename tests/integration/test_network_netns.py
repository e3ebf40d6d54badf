"""Harness for the network tests: a pod network namespace the test makes.

``netns_pod`` creates ``bs-test-<random>`` with loopback up, a veth pair
with IPv4 and IPv6 addresses and routes (nothing answers on the other end,
so traffic routed through it is a blackhole), and /etc/netns/<name>/resolv.conf
so ``ip netns exec`` shows the app its own resolver config. A helper "app"
runs in it holding real sockets (TCP v4/v6, UDP v4/v6, unix stream and
dgram); a local-mode sidecar's app container is that helper, so
``/proc/<pid>/net`` is the namespace's. Everything is removed afterwards.
This module holds no tests.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from sidecar.config import Config
from tests.conftest import Running, start_sidecar

APP = r"""
import json, os, socket, sys
d = sys.argv[1]
keep = []
def tcp_listen(fam, addr):
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.bind((addr, 0)); s.listen(64); keep.append(s); return s
def connect(fam, addr, port, n):
    lst = next(s for s in keep if s.type == socket.SOCK_STREAM and s.getsockname()[1] == port)
    for _ in range(n):
        c = socket.socket(fam, socket.SOCK_STREAM); c.connect((addr, port))
        a, _ = lst.accept(); keep.extend([c, a])
t4 = tcp_listen(socket.AF_INET, "127.0.0.1")
t6 = tcp_listen(socket.AF_INET6, "::1")
connect(socket.AF_INET, "127.0.0.1", t4.getsockname()[1], 5)
connect(socket.AF_INET6, "::1", t6.getsockname()[1], 1)
u4 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u4.bind(("127.0.0.1", 0)); keep.append(u4)
u6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM); u6.bind(("::1", 0)); keep.append(u6)
ux = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM); ux.bind(os.path.join(d, "app.sock")); ux.listen(4); keep.append(ux)
ud = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); ud.bind(os.path.join(d, "dgram.sock")); keep.append(ud)
print(json.dumps({"tcp4": t4.getsockname()[1], "tcp6": t6.getsockname()[1], "udp4": u4.getsockname()[1],
                  "udp6": u6.getsockname()[1], "unix": os.path.join(d, "app.sock"),
                  "dgram": os.path.join(d, "dgram.sock"), "fds": {"tcp4": t4.fileno(), "unix": ux.fileno()}}), flush=True)
for line in sys.stdin:
    cmd = line.split()
    if cmd and cmd[0] == "connect":
        connect(socket.AF_INET, "127.0.0.1", int(cmd[1]), int(cmd[2]))
        print("ok", flush=True)
"""


@dataclass
class NetnsPod:
    """A network namespace with a helper app in it and a sidecar watching it."""

    name: str
    app: subprocess.Popen[str]
    info: dict[str, Any]
    sidecar: Running
    workdir: Path
    extra: list[subprocess.Popen[str]] = field(default_factory=list)

    @property
    def pid(self) -> int:
        return self.app.pid

    def run(self, *argv: str) -> str:
        """Run a command inside the namespace and return its stdout."""
        return subprocess.run(
            ["ip", "netns", "exec", self.name, *argv],
            check=True,
            capture_output=True,
            text=True,
            timeout=20,
        ).stdout

    def spawn(self, script: str, *args: str) -> tuple[subprocess.Popen[str], str]:
        """Start a Python script in the namespace; return it and its first stdout line."""
        p = subprocess.Popen(
            ["ip", "netns", "exec", self.name, sys.executable, "-c", script, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.extra.append(p)
        assert p.stdout is not None
        return p, p.stdout.readline()

    def app_command(self, line: str) -> str:
        assert self.app.stdin is not None and self.app.stdout is not None
        self.app.stdin.write(line + "\n")
        self.app.stdin.flush()
        return self.app.stdout.readline().strip()


def _sh(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True, timeout=20)


SETUP = (
    ("ip", "link", "set", "lo", "up"),
    ("ip", "link", "add", "bsveth0", "type", "veth", "peer", "name", "bsveth1"),
    ("ip", "link", "set", "bsveth0", "mtu", "1400"),
    ("ip", "addr", "add", "10.77.0.1/24", "dev", "bsveth0"),
    ("ip", "-6", "addr", "add", "fd77::1/64", "dev", "bsveth0", "nodad"),
    ("ip", "link", "set", "bsveth0", "up"),
    ("ip", "link", "set", "bsveth1", "up"),
    ("ip", "route", "add", "10.78.0.0/16", "via", "10.77.0.2", "metric", "7"),
    ("ip", "-6", "route", "add", "fd78::/64", "via", "fd77::2"),
)


def make_netns_pod(config: Config | None = None) -> Iterator[NetnsPod]:
    """Generator behind the ``netns_pod`` fixtures (config: extra sidecar settings)."""
    if os.geteuid() != 0:
        pytest.skip("network namespace tests need root (ip netns add)")
    if not shutil.which("ip") or not shutil.which("ss"):
        pytest.skip("needs iproute2 (ip, ss)")
    name = f"bs-test-{secrets.token_hex(4)}"
    etc = Path("/etc/netns") / name
    workdir = Path(tempfile.mkdtemp(prefix="bs-net-"))
    _sh("ip", "netns", "add", name)
    app: subprocess.Popen[str] | None = None
    pod: NetnsPod | None = None
    try:
        for argv in SETUP:
            _sh("ip", "netns", "exec", name, *argv)
        etc.mkdir(parents=True)
        (etc / "resolv.conf").write_text(
            "# bs test\nnameserver 127.0.0.1\nsearch example.test\noptions ndots:2\n"
        )
        (etc / "hosts").write_text(
            "127.0.0.1 localhost\n10.77.0.9 db.example.test\n127.0.0.1 app.local.test app-alias\n"
        )
        app = subprocess.Popen(
            ["ip", "netns", "exec", name, sys.executable, "-c", APP, str(workdir)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert app.stdout is not None
        info = json.loads(app.stdout.readline())
        sidecar = start_sidecar((config or Config()).replace(local_root=app.pid))
        pod = NetnsPod(name, app, info, sidecar, workdir)
        yield pod
    finally:
        if pod is not None:
            pod.sidecar.client.close()
            pod.sidecar.sidecar.stop(0)
            for p in pod.extra:
                p.kill()
                p.wait()
        if app is not None:
            app.kill()
            app.wait()
        subprocess.run(["ip", "netns", "del", name], check=False, capture_output=True)
        shutil.rmtree(etc, ignore_errors=True)
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="module")
def netns_pod() -> Iterator[NetnsPod]:
    """A namespace + app + sidecar, shared by a module's tests (probes on)."""
    yield from make_netns_pod(Config(allow_probes=True, probe_concurrency=2))
