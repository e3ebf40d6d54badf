"""``python -m sidecar.sandbox [--headless]``: run the sandbox pod until a signal.

stdout carries what a program needs, one item a line: ``token TOKEN`` and
then ``listening on HOST:PORT`` (the host-side address, the readiness signal).
stderr carries what a person needs: the mode (and why local mode), how to
connect, where the files are. SIGINT/SIGTERM stop it and remove everything;
SIGUSR1 restarts the app (new pid), as a crash-looping pod would.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from types import FrameType

from sidecar.sandbox.harness import Sandbox, SandboxError
from sidecar.sandbox.start import start_sandbox

STATE_FILE = "sandbox.json"


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m sidecar.sandbox",
        description="Run a shell-less demo app and the borescope sidecar in a sandbox pod.",
    )
    p.add_argument("--headless", action="store_true", help="print only the machine lines")
    p.add_argument(
        "--mode", choices=("auto", "pod", "local"), default="auto", help="pod needs root"
    )
    p.add_argument("--port", type=int, default=0, help="host port for gRPC (default: any free)")
    p.add_argument("--interval", type=float, default=1.0, help="app log rate: seconds per call")
    p.add_argument(
        "--sidecar-as-app-user",
        action="store_true",
        help="pod mode: run the sidecar as the app's uid with no capabilities (least privilege)",
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="sidecar config (repeatable), e.g. --set allow_signals=true",
    )
    return p.parse_args(argv)


def state(sb: Sandbox) -> dict[str, object]:
    """What a tool needs to find its way around the sandbox (written 0600)."""
    return {
        "mode": sb.mode,
        "address": sb.address,
        "token": sb.token,
        "app_pid": sb.app_pid,
        "app_host_pid": sb.app_host_pid,
        "app_uid": sb.app_uid,
        "app_root": sb.app_root,
        "log_file": sb.log_file,
        "stdio_log": sb.stdio_log,
        "http_port": sb.http_port,
        "netns": sb.netns,
        "sidecar_pid": sb.sidecar_pid,
        "sidecar_host_pid": sb.sidecar_host_pid,
        "sidecar_log": sb.sidecar_log,
        "restarts": sb.restarts,
    }


def _write_state(sb: Sandbox) -> str:
    path = os.path.join(sb.workdir, STATE_FILE)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(state(sb), f, indent=2)
    return path


def _say(text: str) -> None:
    print(f"borescope sandbox: {text}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    wake = threading.Event()
    stop = threading.Event()
    restart = threading.Event()

    def on_stop(_signum: int, _frame: FrameType | None) -> None:
        stop.set()
        wake.set()

    def on_restart(_signum: int, _frame: FrameType | None) -> None:
        restart.set()
        wake.set()

    # Installed before anything starts, so an early Ctrl-C still cleans up.
    signal.signal(signal.SIGINT, on_stop)
    signal.signal(signal.SIGTERM, on_stop)
    signal.signal(signal.SIGUSR1, on_restart)
    try:
        sb = start_sandbox(
            args.mode,
            port=args.port,
            interval=args.interval,
            settings=args.set,
            notice=_say,
            sidecar_as_app_user=args.sidecar_as_app_user,
        )
    except SandboxError as e:
        _say(str(e))
        return 1
    except OSError as e:
        _say(f"cannot start: {e}")
        return 1
    with sb:
        path = _write_state(sb)
        print(f"token {sb.token}", flush=True)
        print(f"listening on {sb.address}", flush=True)
        _say(f"{sb.mode} mode; app pid {sb.app_pid}; state in {path}")
        if not args.headless:
            _say(f"connect: borescope tui --addr {sb.address} --token {sb.token}")
            _say("Ctrl-C stops it and removes everything; SIGUSR1 restarts the app")
        written = sb.restarts
        while not stop.is_set():
            wake.wait(1.0)
            wake.clear()
            if sb.restarts != written:  # the supervisor restarted a crashed app
                written = sb.restarts
                _write_state(sb)
            if restart.is_set() and not stop.is_set():
                restart.clear()
                try:
                    pid = sb.restart_app()
                except SandboxError as e:
                    _say(f"app restart failed: {e}")
                    return 1
                written = sb.restarts
                _write_state(sb)
                _say(f"app restarted (pid {pid})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
