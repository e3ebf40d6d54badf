"""`borescope demo` and `python -m sidecar.sandbox` as a user runs them: processes and signals.

Each test starts the real command, talks to the sidecar it announces, then
stops it the way a user or a supervisor would (SIGTERM, SIGINT, SIGKILL, a
quit key in a real terminal) and checks nothing it made is left behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import pty
import re
import select
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from protos import info_pb2
from tui.client import Client, Target

pytestmark = pytest.mark.sandbox
BORESCOPE = Path(sys.executable).with_name("borescope")
STATE = re.compile(r"state in (\S+)")


def _descendants(pid: int) -> set[int]:
    out: set[int] = set()
    todo = [pid]
    while todo:
        p = todo.pop()
        try:
            tasks = os.listdir(f"/proc/{p}/task")
        except FileNotFoundError:
            continue
        for t in tasks:
            try:
                kids = Path(f"/proc/{p}/task/{t}/children").read_text().split()
            except FileNotFoundError:
                continue
            for k in map(int, kids):
                if k not in out:
                    out.add(k)
                    todo.append(k)
    return out


def _alive(pids: set[int]) -> set[int]:
    alive = set()
    for p in pids:
        try:
            state = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            continue
        if state != "Z":
            alive.add(p)
    return alive


def _wait_gone(pids: set[int], workdir: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(pids) and not Path(workdir).exists():
            return
        time.sleep(0.1)
    raise AssertionError(f"left behind: processes {_alive(pids)}, workdir {Path(workdir).exists()}")


class Started:
    """A started command: its process, its token and address, its state file."""

    def __init__(self, argv: list[str], user: list[str] | None = None) -> None:
        self.proc = subprocess.Popen(
            [*(user or []), *argv],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
        )
        assert self.proc.stdout is not None and self.proc.stderr is not None
        self.token = self.proc.stdout.readline().decode().strip()
        self.listening = self.proc.stdout.readline().decode().strip()
        self.notes: list[str] = []
        state = ""
        while not state:
            line = self.proc.stderr.readline().decode()
            assert line, f"no state line; stderr: {self.notes}"
            self.notes.append(line.strip())
            m = STATE.search(line)
            state = m.group(1) if m else ""
        self.state = json.loads(Path(state).read_text())
        self.workdir = str(Path(state).parent)

    @property
    def address(self) -> str:
        return self.listening.removeprefix("listening on ")

    def client(self) -> Client:
        c = Client(Target(self.address, self.token.removeprefix("token ")))
        c.wait_ready(10)
        return c


def _require_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("the sandbox pod needs root")


def test_demo_headless_announces_itself_and_cleans_up_on_sigterm() -> None:
    """`borescope demo --headless` prints `listening on HOST:PORT`, serves, and SIGTERM removes all."""
    _require_root()
    s = Started([str(BORESCOPE), "demo", "--headless"])
    assert re.fullmatch(r"listening on 127\.0\.0\.1:\d+", s.listening), s.listening
    assert re.fullmatch(r"token [\w-]{20,}", s.token)
    with s.client() as c:
        info = c.info.GetInfo(info_pb2.GetInfoRequest(), metadata=c.metadata, timeout=10)
        assert info.api_version.startswith("1.")
    made = _descendants(s.proc.pid)
    assert len(made) >= 5, made  # the sandbox, pause, app, worker, sidecar (+ nsenter/unshare)
    s.proc.send_signal(signal.SIGTERM)
    assert s.proc.wait(30) == 0
    _wait_gone(made, s.workdir)
    host, port = s.address.rsplit(":", 1)
    with pytest.raises(OSError), socket.create_connection((host, int(port)), timeout=1):
        pass


def test_demo_killed_outright_still_cleans_up() -> None:
    """SIGKILL on `borescope demo` (no chance to clean up) still ends the sandbox: parent-death signal."""
    _require_root()
    s = Started([str(BORESCOPE), "demo", "--headless"])
    made = _descendants(s.proc.pid)
    s.proc.kill()
    s.proc.wait(5)
    _wait_gone(made, s.workdir)


def test_sandbox_restarts_the_app_on_sigusr1_and_stops_on_sigint() -> None:
    """`python -m sidecar.sandbox`: SIGUSR1 gives the app a new pid; SIGINT stops and cleans up."""
    _require_root()
    s = Started([sys.executable, "-m", "sidecar.sandbox", "--headless"])
    assert s.state["mode"] == "pod"
    old = s.state["app_pid"]
    s.proc.send_signal(signal.SIGUSR1)
    assert s.proc.stderr is not None
    line = s.proc.stderr.readline().decode()
    assert "app restarted" in line, line
    new = json.loads(Path(s.workdir, "sandbox.json").read_text())["app_pid"]
    assert new != old
    with s.client() as c:
        conts = c.info.ListContainers(
            info_pb2.ListContainersRequest(), metadata=c.metadata, timeout=10
        ).containers
        assert new in [x.root_process.pid for x in conts]
    made = _descendants(s.proc.pid)
    s.proc.send_signal(signal.SIGINT)
    assert s.proc.wait(30) == 0
    _wait_gone(made, s.workdir)


def test_without_root_it_falls_back_to_local_mode_and_says_so() -> None:
    """As a non-root user `borescope demo` runs in local mode, says so, and the app is found."""
    user: list[str] = []
    if os.geteuid() == 0:
        user = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all"]
    s = Started([str(BORESCOPE), "demo", "--headless"], user)
    try:
        assert s.state["mode"] == "local"
        assert any("local mode" in n and "not running as root" in n for n in s.notes), s.notes
        with s.client() as c:
            conts = c.info.ListContainers(
                info_pb2.ListContainersRequest(), metadata=c.metadata, timeout=10
            ).containers
            app = next(x for x in conts if x.kind == info_pb2.CONTAINER_KIND_APP)
            assert app.root_process.pid == s.state["app_pid"]
            assert len(app.pids) >= 2  # the app and its worker
    finally:
        made = _descendants(s.proc.pid)
        s.proc.send_signal(signal.SIGTERM)
        assert s.proc.wait(30) == 0
    _wait_gone(made, s.workdir)


def _read_until(fd: int, pattern: bytes, timeout: float) -> bytes:
    seen = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r, _, _ = select.select([fd], [], [], 0.2)
        if r:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                break  # the child closed the terminal
            if not chunk:
                break
            seen += chunk
            if pattern in seen:
                return seen
    raise AssertionError(f"{pattern!r} not seen on the terminal; last: {seen[-400:]!r}")


def test_demo_opens_the_tui_in_a_terminal_and_quitting_cleans_up() -> None:
    """`borescope demo` in a real terminal shows the TUI on the sandbox; quitting removes everything."""
    _require_root()
    pid, fd = pty.fork()
    if pid == 0:  # the child: become `borescope demo` on the new terminal
        os.environ.update(TERM="xterm-256color", COLUMNS="120", LINES="40")
        os.execv(str(BORESCOPE), [str(BORESCOPE), "demo"])
    try:
        _read_until(fd, b"demo-app", 60)  # the pod's name, drawn by the TUI
        made = _descendants(pid)
        workdirs = {
            m.group(1)
            for p in made
            for m in [re.search(rb"stdio_logs=(\S+)/app-stdio\.log", _cmdline(p))]
            if m
        }
        os.write(fd, b"q")
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            # Keep reading: a child writing to a full terminal would block.
            readable, _, _ = select.select([fd], [], [], 0.2)
            if readable:
                with contextlib.suppress(OSError):
                    os.read(fd, 65536)
        else:
            raise AssertionError("borescope demo did not exit after q")
        assert os.waitstatus_to_exitcode(status) == 0
        for w in workdirs:
            _wait_gone(made, w.decode())
    finally:
        os.close(fd)
        with contextlib.suppress(ProcessLookupError, ChildProcessError):
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
    except FileNotFoundError:
        return b""


def test_sandbox_killed_outright_leaves_no_process_and_its_dir_is_swept() -> None:
    """SIGKILL on the sandbox itself: the pod dies with it (pdeathsig -> pid 1), the next sweep removes its dir."""
    _require_root()
    from sidecar.sandbox import stale

    s = Started([sys.executable, "-m", "sidecar.sandbox", "--headless"])
    made = _descendants(s.proc.pid)
    s.proc.kill()
    s.proc.wait(5)
    deadline = time.monotonic() + 15
    while _alive(made) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(made), f"survived: {_alive(made)}"
    assert Path(s.workdir).is_dir(), "nothing could remove it: the owner was killed"
    assert s.workdir in stale.sweep()
    assert not Path(s.workdir).exists()


def test_ctrl_c_while_the_demo_starts_exits_cleanly_and_cleans_up() -> None:
    """Ctrl-C in the terminal while the sandbox starts: exit 130, one line, nothing left behind."""
    _require_root()
    pid, fd = pty.fork()
    if pid == 0:
        os.environ.update(TERM="xterm-256color")
        os.execv(str(BORESCOPE), [str(BORESCOPE), "demo"])
    try:
        deadline = time.monotonic() + 20
        made: set[int] = set()
        while time.monotonic() < deadline and not made:
            made = _descendants(pid)  # the sandbox exists: now it is "starting"
            time.sleep(0.02)
        assert made, "the sandbox never started"
        os.write(fd, b"\x03")  # the terminal turns it into SIGINT for the foreground group
        seen = b""
        status = 0
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline:
            readable, _, _ = select.select([fd], [], [], 0.2)
            if readable:
                with contextlib.suppress(OSError):  # the child closed the terminal
                    seen += os.read(fd, 65536)
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
        else:
            raise AssertionError(f"borescope demo did not exit on Ctrl-C; saw {seen[-300:]!r}")
        assert os.waitstatus_to_exitcode(status) == 130, seen[-300:]
        assert b"Traceback" not in seen
        deadline = time.monotonic() + 30
        while _alive(made) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _alive(made), f"left behind: {_alive(made)}"
    finally:
        os.close(fd)
        with contextlib.suppress(ProcessLookupError, ChildProcessError):
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
