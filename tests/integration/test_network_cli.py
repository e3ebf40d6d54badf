"""``borescope net`` and ``borescope probe`` against a real sidecar watching a test netns.

The CLI runs as a separate process, as a user runs it: exit codes, stdout and
the one-line stderr are what is checked.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from sidecar.config import Config
from tests.integration.test_network_netns import NetnsPod, make_netns_pod, netns_pod

__all__ = ["netns_pod"]
ROOT = Path(__file__).resolve().parents[2]


def run(pod: NetnsPod, *argv: str) -> tuple[int, str, str]:
    """Run ``borescope`` as its own process (as a user would): (exit code, stdout, stderr)."""
    p = subprocess.run(
        [sys.executable, "-m", "tui.cli.main", *argv, "--addr", pod.sidecar.address],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env={**os.environ, "BORESCOPE_TOKEN": pod.sidecar.token},
    )
    return p.returncode, p.stdout, p.stderr


def test_net_listen_json_names_owner(netns_pod: NetnsPod) -> None:
    """`net listen -o json` lists the app's listeners with their owning pid and fd."""
    rc, out, _ = run(netns_pod, "net", "listen", "-t", "-o", "json")
    assert rc == 0
    socks = json.loads(out)
    mine = next(s for s in socks if s["local_port"] == netns_pod.info["tcp4"])
    assert mine["state"] == "LISTEN"
    assert mine["owners"][0]["process"]["pid"] == netns_pod.pid
    assert mine["owners"][0]["fd"] == netns_pod.info["fds"]["tcp4"]
    assert {s["state"] for s in socks} == {"LISTEN"}


def test_net_sockets_table_like_ss(netns_pod: NetnsPod) -> None:
    """The default view is an ss-like table with the owner as name(pid,fd=N), IPv6 bracketed."""
    rc, out, _ = run(netns_pod, "net")
    assert rc == 0
    lines = out.splitlines()
    assert lines[0].split() == ["PROTO", "STATE", "RECV-Q", "SEND-Q", "LOCAL", "REMOTE", "PROCESS"]
    v6 = next(
        line for line in lines if f"[::1]:{netns_pod.info['tcp6']}" in line and "LISTEN" in line
    )
    assert f"({netns_pod.pid},fd=" in v6 and v6.startswith("tcp6")
    assert any(line.startswith("u_str") and netns_pod.info["unix"] in line for line in lines)


def test_net_other_views(netns_pod: NetnsPod) -> None:
    """summary, ifaces, routes, dns and counters each print their view and exit 0."""
    rc, out, _ = run(netns_pod, "net", "summary")
    assert rc == 0 and "ESTABLISHED 12" in out and "(inbound)" in out
    rc, out, _ = run(netns_pod, "net", "ifaces")
    assert rc == 0 and "bsveth0" in out and "10.77.0.1/24" in out and "fd77::1/64" in out
    rc, out, _ = run(netns_pod, "net", "routes")
    assert rc == 0 and "10.78.0.0/16" in out and "10.77.0.2" in out
    rc, out, _ = run(netns_pod, "net", "dns")
    assert rc == 0 and "nameservers: 127.0.0.1" in out and "db.example.test" in out
    rc, out, _ = run(netns_pod, "net", "counters", "--delta", "0.2")
    assert rc == 0 and "Tcp.RetransSegs" in out and "delta over 200 ms" in out


def test_probe_exit_codes(netns_pod: NetnsPod) -> None:
    """A probe that reaches its target exits 0; one that is refused exits 1 and says why."""
    rc, out, _ = run(netns_pod, "probe", "tcp", f"127.0.0.1:{netns_pod.info['tcp4']}")
    assert rc == 0 and out.startswith("connected to 127.0.0.1:")
    rc, out, _ = run(netns_pod, "probe", "tcp", "127.0.0.1:9")
    assert rc == 1 and "connection refused" in out
    rc, _out, err = run(netns_pod, "probe", "tcp", "no-port-here")
    assert rc == 2 and "HOST:PORT" in err


def test_probe_disabled_is_one_line() -> None:
    """With probes off, the CLI prints one line naming the switch and exits 1, no traceback."""
    for pod in make_netns_pod(Config()):
        rc, out, err = run(pod, "probe", "http", "http://127.0.0.1:9/")
        assert rc == 1 and out == ""
        assert err.count("\n") == 1 and "PERMISSION_DENIED" in err and "allow_probes" in err


HOSTILE = r"""
import socket, sys
open('/proc/self/comm', 'w').write('\x1b]52;c;aGk=\x07')
u = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
u.bind(sys.argv[1] + '/\x1b[31mred\x07.sock'); u.listen(1)
print('ready', flush=True)
sys.stdin.read()
"""


def test_hostile_names_are_escaped(netns_pod: NetnsPod) -> None:
    """A process named with an OSC 52 clipboard write, holding a unix socket whose path has
    colour codes: the table shows them escaped, never as raw escape bytes."""
    _proc, line = netns_pod.spawn(HOSTILE, str(netns_pod.workdir))
    assert line.strip() == "ready"
    rc, out, _ = run(netns_pod, "net", "-x")
    assert rc == 0
    assert "\x1b" not in out and "\x07" not in out
    row = next(r for r in out.splitlines() if "red" in r and ".sock" in r)
    assert "\\x1b" in row or "\\e" in row or "^[" in row  # visibly escaped
