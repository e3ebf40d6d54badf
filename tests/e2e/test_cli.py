"""The one-shot CLI against the sandbox pod, run as a user runs it: a new process.

``borescope ps|ls|cat|logs --addr HOST:PORT`` (and ``BORESCOPE_ADDR``) print
what the sidecar reports; bad addresses and paths are one line on stderr with
the documented exit code and never a traceback.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sidecar.sandbox.harness import Sandbox

pytestmark = pytest.mark.sandbox
BORESCOPE = Path(sys.executable).with_name("borescope")


def borescope(
    *args: str, env: dict[str, str] | None = None, timeout: float = 30
) -> subprocess.CompletedProcess[bytes]:
    """Run the installed console script (or the module when it is not installed)."""
    argv = [str(BORESCOPE)] if BORESCOPE.exists() else [sys.executable, "-m", "tui.cli.main"]
    clean = {k: v for k, v in os.environ.items() if not k.startswith("BORESCOPE_")}
    return subprocess.run(
        [*argv, *args],
        capture_output=True,
        timeout=timeout,
        env={**clean, **(env or {})},
        check=False,
    )


def conn(sb: Sandbox) -> list[str]:
    return ["--addr", sb.address, "--token", sb.token]


def one_line_error(r: subprocess.CompletedProcess[bytes]) -> str:
    err = r.stderr.decode()
    assert "Traceback" not in err, err
    assert len(err.strip().splitlines()) == 1, err
    return err.strip()


def test_ls_lists_the_apps_root(sandbox_pod: Sandbox) -> None:
    """`borescope ls /` lists the app's root: its code and /etc, no /bin."""
    r = borescope("ls", "/", *conn(sandbox_pod))
    assert r.returncode == 0, r.stderr
    names = {line.split()[-1].rstrip("/") for line in r.stdout.decode().splitlines()[1:] if line}
    assert {"app", "etc", "usr", "var"} <= names and "bin" not in names


def test_cat_prints_the_exact_bytes(sandbox_pod: Sandbox) -> None:
    """`borescope cat /etc/passwd` writes exactly the file's bytes to stdout."""
    r = borescope("cat", "/etc/passwd", *conn(sandbox_pod))
    assert r.returncode == 0, r.stderr
    assert r.stdout == Path(sandbox_pod.app_root, "etc/passwd").read_bytes()


def test_ps_lists_the_app_with_its_pid(sandbox_pod: Sandbox) -> None:
    """`borescope ps` shows the app's pid and command; `-o json` carries the same pid."""
    r = borescope("ps", *conn(sandbox_pod))
    assert r.returncode == 0, r.stderr
    rows = [line.split() for line in r.stdout.decode().splitlines()[1:]]
    assert any(str(sandbox_pod.app_pid) in row for row in rows), r.stdout
    assert b"demo-app" in r.stdout
    j = borescope("ps", "-o", "json", *conn(sandbox_pod))
    assert j.returncode == 0, j.stderr
    doc = json.loads(j.stdout)
    procs = doc["processes"] if isinstance(doc, dict) else doc
    assert sandbox_pod.app_pid in {p["ref"]["pid"] for p in procs}


def test_logs_prints_the_apps_records(sandbox_pod: Sandbox) -> None:
    """`borescope logs` (not following) prints the app's log records and exits."""
    r = borescope("logs", *conn(sandbox_pod), timeout=30)
    assert r.returncode == 0, r.stderr
    assert b"job done" in r.stdout or b"request" in r.stdout, r.stdout[-500:]


def test_address_from_the_environment(sandbox_pod: Sandbox) -> None:
    """BORESCOPE_ADDR and BORESCOPE_TOKEN stand in for --addr and --token."""
    env = {"BORESCOPE_ADDR": sandbox_pod.address, "BORESCOPE_TOKEN": sandbox_pod.token}
    r = borescope("cat", "/etc/hosts", env=env)
    assert r.returncode == 0, r.stderr
    assert r.stdout == Path(sandbox_pod.app_root, "etc/hosts").read_bytes()


def test_missing_path_is_one_line_and_exit_1(sandbox_pod: Sandbox) -> None:
    """A path that does not exist: exit 1 and one line naming NOT_FOUND."""
    r = borescope("cat", "/no/such/file", *conn(sandbox_pod))
    assert r.returncode == 1
    assert "NOT_FOUND" in one_line_error(r)


@pytest.mark.parametrize(
    "address", ["not-an-address", "127.0.0.1:99999", "[::1", "127.0.0.1:1"], ids=str
)
def test_bad_or_unreachable_address_is_one_line_and_exit_2(address: str) -> None:
    """A malformed or unreachable address: one clear line on stderr, exit 2, no traceback."""
    r = borescope("ls", "/", "--addr", address, "--timeout", "1", timeout=20)
    assert r.returncode == 2, (r.returncode, r.stderr)
    line = one_line_error(r)
    assert address.strip("[") in line or "address" in line
