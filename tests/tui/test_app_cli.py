"""`borescope tui` before the terminal is taken over: bad input is one line and exit 2."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from sidecar.config import Config
from tests.conftest import start_sidecar

ROOT = Path(__file__).resolve().parents[2]


def borescope(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tui.cli.main", *args],
        check=False,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=30,
        stdin=subprocess.DEVNULL,
    )


def one_line(text: str) -> str:
    lines = text.strip().splitlines()
    assert len(lines) == 1, text
    assert "Traceback" not in text
    return lines[0]


def test_unreachable_address_is_one_line_exit_2() -> None:
    """Nothing listens: exit 2 and one line naming the address and what to check."""
    r = borescope("tui", "--addr", "127.0.0.1:1")
    assert r.returncode == 2
    line = one_line(r.stderr)
    assert "127.0.0.1:1" in line and "port-forward" in line


@pytest.mark.parametrize("addr", ["nonsense", "host:99999", "::1:80"])
def test_malformed_address_is_one_line_exit_2(addr: str) -> None:
    """A malformed address: exit 2 and one line saying how to write it."""
    r = borescope("tui", "--addr", addr)
    assert r.returncode == 2
    assert "malformed address" in one_line(r.stderr)


def test_address_from_environment() -> None:
    """Without --addr, BORESCOPE_ADDR is used (here: unreachable, so exit 2 naming it)."""
    r = borescope("tui", env={"BORESCOPE_ADDR": "127.0.0.1:2"})
    assert r.returncode == 2 and "127.0.0.1:2" in one_line(r.stderr)


def test_incompatible_sidecar_refused_before_the_screen(
    app_process: subprocess.Popen[bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real sidecar speaking API 2.0: exit 2, one line saying which side to upgrade."""
    import sidecar.services.info as info_service

    monkeypatch.setattr(info_service, "API_VERSION", "2.0")
    s = start_sidecar(Config(local_root=app_process.pid))
    try:
        r = borescope("tui", "--addr", s.address, "--token", s.token)
    finally:
        s.client.close()
        s.sidecar.stop(0)
    assert r.returncode == 2
    assert "speaks API 2.0" in one_line(r.stderr) and "upgrade this client" in r.stderr


def test_missing_token_is_one_line_exit_2(app_process: subprocess.Popen[bytes]) -> None:
    """Auth on and no token: exit 2 and one line saying how to pass the token."""
    s = start_sidecar(Config(local_root=app_process.pid))
    try:
        r = borescope("tui", "--addr", s.address, env={"BORESCOPE_TOKEN": ""})
    finally:
        s.client.close()
        s.sidecar.stop(0)
    assert r.returncode == 2 and "BORESCOPE_TOKEN" in one_line(r.stderr)
