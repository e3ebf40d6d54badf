"""Start a real sidecar process for a benchmark (``python -m sidecar serve``)."""

from __future__ import annotations

import hashlib
import secrets
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def start_sidecar(log: Path, *settings: str) -> tuple[subprocess.Popen[bytes], str, str]:
    """A sidecar on 127.0.0.1:<free port> with a fresh token; returns (process, address, token).

    Args:
        log: file that receives the sidecar's stdout and stderr.
        settings: extra ``KEY=VALUE`` config settings (``--set``).

    Raises:
        RuntimeError: it exited or did not announce its address within 20 s.
    """
    token = secrets.token_urlsafe(24)
    digest = hashlib.sha256(token.encode()).hexdigest()
    argv = [sys.executable, "-m", "sidecar", "serve", "--listen", "127.0.0.1:0"]
    for kv in (f"token_sha256={digest}", *settings):
        argv += ["--set", kv]
    out = open(log, "wb")  # noqa: SIM115 - the child owns it for its life
    proc = subprocess.Popen(argv, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        for line in log.read_text(errors="replace").splitlines():
            if line.startswith("listening on "):
                return proc, line.split()[-1], token
        if proc.poll() is not None:
            raise RuntimeError(f"sidecar exited: {log.read_text()[-2000:]}")
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError("sidecar did not start within 20 s")
