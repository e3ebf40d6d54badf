"""`borescope serve` and `borescope token` hand their arguments to the sidecar untouched."""

from __future__ import annotations

import hashlib
import signal
import subprocess
import sys
from pathlib import Path

BORESCOPE = str(Path(sys.executable).with_name("borescope"))


def test_serve_passes_flags_through_and_stops_on_sigterm() -> None:
    """`borescope serve --listen ... --set k=v` starts the sidecar (flags reach it) and SIGTERM ends it with 0."""
    p = subprocess.Popen(
        [BORESCOPE, "serve", "--listen", "127.0.0.1:0", "--set", "insecure_no_auth=true"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert p.stdout is not None
        for line in p.stdout:
            if line.startswith("listening on 127.0.0.1:"):
                break
        else:
            raise AssertionError(
                f"no listening line; stderr: {p.stderr.read() if p.stderr else ''}"
            )
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=20) == 0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def test_serve_rejects_a_bad_key_with_one_line() -> None:
    """An unknown --set key is one line on stderr and exit 2, no traceback."""
    r = subprocess.run(
        [BORESCOPE, "serve", "--set", "no_such_key=1"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert r.returncode == 2
    assert "no_such_key" in r.stderr
    assert "Traceback" not in r.stderr


def test_token_prints_a_token_and_its_hash() -> None:
    """`borescope token` prints a token and the SHA-256 the sidecar must be given."""
    r = subprocess.run([BORESCOPE, "token"], capture_output=True, text=True, timeout=30, check=True)
    fields = dict(line.split(":", 1) for line in r.stdout.splitlines() if ":" in line)
    token, digest = fields["token"].strip(), fields["sha256"].strip()
    assert hashlib.sha256(token.encode()).hexdigest() == digest
