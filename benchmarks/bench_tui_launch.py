"""TUI launch: `borescope tui` start -> first sidecar data on screen, in a real terminal.

Runs under tmux (a private server, 120x40), alternately in the same run:

* subject: ``python -m tui.cli.main tui --addr ...`` against the sandbox pod
  (root) or a local-mode sidecar (otherwise), timed from spawning the process
  to the terminal showing the pod name from the sidecar's GetInfo with
  "● connected" in the header (read with capture-pane every 10 ms);
* anchor: a bare Textual app (an empty ``App`` with one ``Static``), timed
  from spawning to its first paint, started the same way.

There is no natural anchor for "first data"; the bare app says how much of
the figure is Python + Textual start-up rather than borescope. Prints the
medians and their ratio; the goal is the absolute figure: <= 1.0 s.
``--quick`` does 3 runs instead of 7.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

GOAL_S = 1.0
BARE_APP = """
from textual.app import App
from textual.widgets import Static

class Bare(App):
    def compose(self):
        yield Static("bare-app-ready")

Bare().run()
"""


def _quote(s: str) -> str:
    return "'" + s.replace("'", "'\\''") + "'"


def time_to_text(argv: list[str], env: dict[str, str], text: str, timeout: float = 20.0) -> float:
    """Seconds from starting ``argv`` in a fresh 120x40 tmux to ``text`` being on screen."""
    sock = f"bs-bench-{uuid.uuid4().hex[:8]}"
    cmd = " ".join(_quote(a) for a in ["env", *(f"{k}={v}" for k, v in env.items()), *argv])
    tmux = ["tmux", "-L", sock]
    # Start the server with a placeholder window first, so server start-up is not timed.
    subprocess.run([*tmux, "-f", "/dev/null", "new-session", "-d", "-s", "b", "-x", "120",
                    "-y", "40", "sleep 60"], check=True)  # fmt: skip
    try:
        t0 = time.perf_counter()
        subprocess.run([*tmux, "respawn-pane", "-k", "-t", "b", cmd], check=True)
        while time.perf_counter() - t0 < timeout:
            screen = subprocess.run(
                [*tmux, "capture-pane", "-p", "-t", "b"],
                capture_output=True,
                text=True,
                check=False,
            ).stdout
            if text in screen:
                return time.perf_counter() - t0
            time.sleep(0.01)
        raise RuntimeError(f"{text!r} not on screen within {timeout}s:\n{screen}")
    finally:
        subprocess.run([*tmux, "kill-server"], capture_output=True, check=False)


@contextmanager
def target() -> Iterator[tuple[str, str, str, str]]:
    """(address, token, pod name as shown, kind) of a sidecar to launch against."""
    if os.geteuid() == 0:
        from sidecar.sandbox.start import start_sandbox

        sb = start_sandbox("pod", interval=0.25)
        try:
            yield sb.address, sb.token, "demo-app", "sandbox pod"
        finally:
            sb.close()
        return
    from sidecar.config import Config
    from sidecar.deps import Deps
    from sidecar.server import build

    app = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    token = secrets.token_urlsafe(24)
    config = Config(
        local_root=app.pid,
        pod_name="bench-pod",
        token_sha256=hashlib.sha256(token.encode()).hexdigest(),
    )
    sc = build("127.0.0.1:0", config, Deps.from_config(config))
    sc.start()
    try:
        yield f"127.0.0.1:{sc.port}", token, "bench-pod", "local sidecar"
    finally:
        sc.stop(0)
        app.kill()
        app.wait()


def median_of(runs: int, fn: Callable[[], float]) -> tuple[float, list[float]]:
    values = [fn() for _ in range(runs)]
    return statistics.median(values), values


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    p.add_argument("--quick", action="store_true", help="3 runs instead of 7")
    args = p.parse_args(argv)
    if shutil.which("tmux") is None:
        print("tui_launch: skipped (tmux is not installed)")
        return 0
    runs = 3 if args.quick else 7
    state = tempfile.mkdtemp(prefix="bs-bench-state-")
    base_env = {"TERM": "xterm-256color", "PYTHONPATH": str(ROOT), "XDG_STATE_HOME": state}
    with target() as (address, token, pod, kind):
        tui_argv = [sys.executable, "-m", "tui.cli.main", "tui", "--addr", address]
        tui_env = {**base_env, "BORESCOPE_TOKEN": token}
        bare_argv = [sys.executable, "-c", BARE_APP]
        # Warm the page cache for both (the first start of any Python program is slower).
        time_to_text(tui_argv, tui_env, "● connected")
        time_to_text(bare_argv, base_env, "bare-app-ready")
        subject: list[float] = []
        anchor: list[float] = []
        for _ in range(runs):  # alternate, so machine load hits both alike
            subject.append(time_to_text(tui_argv, tui_env, "● connected"))
            anchor.append(time_to_text(bare_argv, base_env, "bare-app-ready"))
        # The header line carries the pod name from GetInfo: check it really was data.
        shown = time_to_text(tui_argv, tui_env, pod)
    s, a = statistics.median(subject), statistics.median(anchor)
    print(
        f"tui_launch ({kind}, to pod name + connected on screen): {s:.3f} s "
        f"| anchor (bare Textual app to first paint): {a:.3f} s "
        f"| ratio: {s / a:.2f} (goal: <= {GOAL_S:.1f} s absolute; "
        f"{'met' if s <= GOAL_S else 'NOT met'})"
    )
    print(
        f"  runs: subject {', '.join(f'{v:.3f}' for v in subject)}; "
        f"anchor {', '.join(f'{v:.3f}' for v in anchor)}; pod name shown after {shown:.3f} s"
    )
    shutil.rmtree(state, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
