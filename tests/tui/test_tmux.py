"""Real-terminal smoke tests: `borescope tui` under tmux, read back with capture-pane.

Each test runs its own tmux server (``-L`` with a unique socket name), so
nothing touches a user's tmux. The main test uses the sandbox pod (a
shell-less app and a sidecar in shared namespaces) when running as root,
else a local sidecar, and asserts on what a person would see.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from sidecar.config import Config
from tests.conftest import start_sidecar

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")


@dataclass
class Target:
    address: str
    token: str
    pod: str
    app_name: str


class Tmux:
    """One private tmux server with one 120x40 session running a command."""

    def __init__(self, command: list[str], env: dict[str, str], size: tuple[int, int]) -> None:
        self.sock = f"bs-test-{uuid.uuid4().hex[:8]}"
        envs = [f"{k}={v}" for k, v in env.items()]
        cmd = " ".join(_quote(a) for a in ["env", *envs, *command])
        self.run(
            "-f", "/dev/null", "new-session", "-d", "-s", "bs", "-x", str(size[0]),
            "-y", str(size[1]), cmd,
        )  # fmt: skip
        self.run("set-option", "-t", "bs", "remain-on-exit", "on")

    def run(self, *args: str) -> str:
        r = subprocess.run(
            ["tmux", "-L", self.sock, *args], capture_output=True, text=True, check=True
        )
        return r.stdout

    def screen(self) -> str:
        return self.run("capture-pane", "-p", "-t", "bs")

    def keys(self, *keys: str) -> None:
        self.run("send-keys", "-t", "bs", *keys)

    def wait_for(self, text: str, timeout: float = 15.0) -> str:
        deadline = time.monotonic() + timeout
        screen = ""
        while time.monotonic() < deadline:
            screen = self.screen()
            if text in screen:
                return screen
            time.sleep(0.1)
        raise AssertionError(f"{text!r} not on screen within {timeout}s:\n{screen}")

    def exit_status(self, timeout: float = 10.0) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            dead = self.run("display-message", "-p", "-t", "bs", "#{pane_dead} #{pane_dead_status}")
            flag, _, status = dead.strip().partition(" ")
            if flag == "1":
                return int(status or 0)
            time.sleep(0.1)
        raise AssertionError("borescope tui did not exit")

    def close(self) -> None:
        subprocess.run(["tmux", "-L", self.sock, "kill-server"], capture_output=True, check=False)


def _quote(s: str) -> str:
    return "'" + s.replace("'", "'\\''") + "'"


def launch(target: Target, tmp_path: Path, size: tuple[int, int] = (120, 40)) -> Tmux:
    env = {
        "BORESCOPE_TOKEN": target.token,
        "XDG_STATE_HOME": str(tmp_path / "state"),
        "TERM": "xterm-256color",
        "PYTHONPATH": str(ROOT),
    }
    return Tmux([sys.executable, "-m", "tui.cli.main", "tui", "--addr", target.address], env, size)


@pytest.fixture(scope="module")
def pod_target() -> Iterator[Target]:
    """The sandbox pod when root (the real shell-less app), else a local sidecar."""
    if os.geteuid() == 0:
        from sidecar.sandbox.start import start_sandbox

        sb = start_sandbox("pod", interval=0.25)
        try:
            yield Target(sb.address, sb.token, "demo-app", "demo-app")
        finally:
            sb.close()
        return
    p = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    r = start_sidecar(Config(local_root=p.pid, pod_name="tmux-pod"))
    try:
        yield Target(r.address, r.token, "tmux-pod", "python")
    finally:
        r.client.close()
        r.sidecar.stop(0)
        p.kill()
        p.wait()


def test_tmux_smoke_keys_and_clean_exit(pod_target: Target, tmp_path: Path) -> None:
    """In a real terminal: the header shows the pod and "connected"; 2 shows the processes
    screen, 6 the overview with the app's container; ? lists the keys; escape closes it;
    q leaves with exit 0 and no traceback."""
    t = launch(pod_target, tmp_path)
    try:
        first = t.wait_for("connected")
        assert pod_target.pod in first.splitlines()[0]
        t.keys("6")
        screen = t.wait_for("RESTARTS")
        assert "Containers" in screen and pod_target.app_name in screen
        t.keys("?")
        screen = t.wait_for("Keys: Overview")
        assert "Everywhere" in screen and "Quit" in screen
        t.keys("Escape")
        deadline = time.monotonic() + 5
        while "Keys: Overview" in t.screen() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert "Keys: Overview" not in t.screen()
        t.keys("2")
        t.wait_for("Procs")
        t.keys("q")
        assert t.exit_status() == 0
        assert "Traceback" not in t.screen()
    finally:
        t.close()


def test_tmux_80x24_and_ctrl_c(pod_target: Target, tmp_path: Path) -> None:
    """At 80x24 the header still shows the connection state and the footer the keys;
    Ctrl-C exits cleanly (status 0, no traceback)."""
    t = launch(pod_target, tmp_path, size=(80, 24))
    try:
        screen = t.wait_for("connected")
        lines = screen.splitlines()
        assert "connected" in lines[0]
        # The keys footer is there; its right end (the palette key) is docked, always shown.
        assert any("palette" in line for line in lines[-2:])
        t.keys("C-c")
        assert t.exit_status() == 0
        assert "Traceback" not in t.screen()
    finally:
        t.close()


def test_tmux_hostile_name_cannot_write_the_clipboard(tmp_path: Path) -> None:
    """A process named with an OSC 52 clipboard write: the terminal shows it escaped, and
    tmux (set-clipboard on, so it would store an OSC 52) has no paste buffer afterwards."""
    code = "open('/proc/self/comm','w').write('\\x1b]52;c;aGk=\\x07');import time; time.sleep(600)"
    p = subprocess.Popen([sys.executable, "-c", code])
    r = start_sidecar(Config(local_root=p.pid, pod_name="hostile-pod"))
    t = launch(Target(r.address, r.token, "hostile-pod", ""), tmp_path)
    try:
        t.run("set-option", "-g", "set-clipboard", "on")
        t.wait_for("connected")
        t.keys("6")
        screen = t.wait_for("\\x1b]52;c;aGk=\\x07")
        assert "\x1b" not in screen
        assert t.run("list-buffers").strip() == ""
        # Control: the same bytes printed raw in this tmux do create a buffer, so the
        # empty list above means borescope did not emit them.
        t.run("new-window", "-d", "printf '\\033]52;c;aGk=\\007'; sleep 2")
        deadline = time.monotonic() + 5
        while not t.run("list-buffers").strip() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert t.run("list-buffers").strip()
    finally:
        t.close()
        r.client.close()
        r.sidecar.stop(0)
        p.kill()
        p.wait()
