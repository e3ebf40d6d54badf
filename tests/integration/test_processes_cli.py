"""``borescope ps`` and ``borescope kill`` as a user runs them, against a real sidecar."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

from sidecar.config import Config
from tests.conftest import ROOT, Running, start_sidecar
from tests.integration.test_processes import wait_for_child

CANARY = "canary-env-7f3a"
HOSTILE = "import time; time.sleep(300)  # \x1b]0;pwned\x07 \x1b[2J"


def borescope(r: Running, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "BORESCOPE_ADDR": r.address, "BORESCOPE_TOKEN": r.token}
    return subprocess.run(
        [sys.executable, "-m", "tui.cli.main", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def hostile() -> Iterator[subprocess.Popen[bytes]]:
    """A process whose command line carries terminal escape sequences."""
    p = subprocess.Popen([sys.executable, "-c", HOSTILE])
    yield p
    p.kill()
    p.wait()


def test_ps_json_lists_the_app_without_the_canary(
    local_sidecar: Running, app_process: subprocess.Popen[bytes]
) -> None:
    """-o json is one JSON document with the app's process; no secret value in it."""
    res = borescope(local_sidecar, "ps", "-o", "json")
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    pids = {p["ref"]["pid"] for p in doc["processes"]}
    assert app_process.pid in pids
    assert CANARY not in res.stdout


def test_ps_tree_indents_children_under_parents(
    local_sidecar: Running, app_process: subprocess.Popen[bytes]
) -> None:
    """--tree with a container filter shows the app first and its child indented under it."""
    wait_for_child(app_process.pid)
    res = borescope(local_sidecar, "ps", "--tree", "-c", f"local-{app_process.pid}")
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[0].split()[:3] == ["PID", "PPID", "USER"]
    assert lines[1].split()[0] == str(app_process.pid)
    assert lines[2].rstrip().endswith("└─ sleep 300")
    assert len(lines) == 3


def test_ps_pid_shows_sections_with_redaction(
    local_sidecar: Running, app_process: subprocess.Popen[bytes]
) -> None:
    """ps PID prints the process, its environment with secrets redacted, limits and more."""
    res = borescope(local_sidecar, "ps", str(app_process.pid))
    assert res.returncode == 0, res.stderr
    out = res.stdout
    assert f"pid {app_process.pid}" in out
    assert "DB_PASSWORD=<redacted>" in out and "PLAIN=visible" in out
    assert CANARY not in out
    for header in ("environment", "limits", "open files", "threads", "cgroup v"):
        assert header in out


def test_kill_refused_is_one_line_naming_the_switch(
    local_sidecar: Running, app_process: subprocess.Popen[bytes]
) -> None:
    """With signals off: exit 1, one line on stderr naming allow_signals, no traceback."""
    res = borescope(local_sidecar, "kill", str(app_process.pid), "-s", "TERM")
    assert res.returncode == 1
    assert res.stderr.count("\n") == 1 and "allow_signals" in res.stderr
    assert "Traceback" not in res.stderr
    assert app_process.poll() is None


def test_kill_sends_when_allowed(app_process: subprocess.Popen[bytes]) -> None:
    """With signals on, kill pins the process identity and delivers SIGTERM via pidfd."""
    r = start_sidecar(Config(local_root=app_process.pid, allow_signals=True))
    try:
        res = borescope(r, "kill", str(app_process.pid), "-s", "SIGTERM", "--reason", "test")
        assert res.returncode == 0, res.stderr
        assert "via pidfd_send_signal" in res.stdout
        assert app_process.wait(timeout=5) == -15
    finally:
        r.client.close()
        r.sidecar.stop(0)


def test_hostile_command_lines_cannot_drive_the_terminal(
    local_sidecar: Running, hostile: subprocess.Popen[bytes]
) -> None:
    """Escape sequences in a target's cmdline are shown escaped in ps and ps PID."""
    for args in (("ps",), ("ps", str(hostile.pid))):
        res = borescope(local_sidecar, *args)
        assert res.returncode == 0, res.stderr
        assert "\x1b" not in res.stdout and "\x07" not in res.stdout
        assert "\\x1b]0;pwned" in res.stdout


def test_tree_order_depth_first() -> None:
    """tree_order puts children right after their parent, one level deeper; orphans are roots."""
    from protos import common_pb2, processes_pb2
    from tui.cli.ps import tree_order

    def proc(pid: int, ppid: int) -> processes_pb2.Process:
        return processes_pb2.Process(ref=common_pb2.ProcessRef(pid=pid), ppid=ppid)

    order = tree_order([proc(5, 1), proc(1, 0), proc(7, 5), proc(3, 1), proc(9, 42)])
    assert [(d, p.ref.pid) for d, p in order] == [(0, 1), (1, 3), (1, 5), (2, 7), (0, 9)]


def test_ps_follows_pages_cut_by_the_message_limit(app_process: subprocess.Popen[bytes]) -> None:
    """When the sidecar's message limit cuts a listing, ps fetches the rest: every process
    appears exactly once."""
    fat = [
        subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)", "y" * (30 << 10)])
        for _ in range(16)
    ]
    r = start_sidecar(Config(local_root=app_process.pid, max_message_bytes=256 << 10))
    try:
        res = borescope(r, "ps", "-o", "json")
        assert res.returncode == 0, res.stderr
        pids = [p["ref"]["pid"] for p in json.loads(res.stdout)["processes"]]
        assert len(pids) == len(set(pids))
        assert {p.pid for p in fat} <= set(pids)
    finally:
        for p in fat:
            p.kill()
            p.wait()
        r.client.close()
        r.sidecar.stop(0)
