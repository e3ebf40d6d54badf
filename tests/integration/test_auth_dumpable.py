"""The sidecar is not dumpable: a process of its own UID cannot read its environ.

The app container runs as the same UID as the sidecar in the preferred
deployment and shares its PID namespace, so without ``PR_SET_DUMPABLE=0`` the
app could read ``/proc/<sidecar>/environ`` (config, token hash) and its memory.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT, new_token

UID = 42431  # an unused uid: neither root nor any engineer's process
CANARY = "canary-sidecar-env-4d2e"

READER = r"""
import json, sys
out = {}
for pid in sys.argv[1:]:
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            out[pid] = "read:" + f.read().decode(errors="replace")
    except PermissionError:
        out[pid] = "denied"
print(json.dumps(out))
"""


def as_uid(*argv: str) -> list[str]:
    return ["setpriv", f"--reuid={UID}", f"--regid={UID}", "--clear-groups", *argv]


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run processes as another uid")
def test_sidecar_environ_is_unreadable_to_its_own_uid() -> None:
    """A process with the sidecar's UID (no capabilities) is refused the sidecar's
    /proc/PID/environ, while it can read that of an ordinary process of the same UID
    (the control proving the access path works)."""
    _token, digest = new_token()
    env = {"PATH": os.environ["PATH"], "BORESCOPE_TOKEN_SHA256": digest, "SIDECAR_CANARY": CANARY}
    sidecar = subprocess.Popen(
        as_uid(sys.executable, "-m", "sidecar", "serve", "--listen", "127.0.0.1:0"),
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    control = subprocess.Popen(as_uid("sleep", "60"), env={"CONTROL": CANARY})
    try:
        assert sidecar.stdout is not None
        for line in sidecar.stdout:  # JSON log lines first, then "listening on ..."
            if line.startswith(b"listening on"):
                break
        else:
            raise AssertionError(f"the sidecar did not start: {sidecar.communicate()[1]!r}")
        r = subprocess.run(
            as_uid(sys.executable, "-I", "-c", READER, str(sidecar.pid), str(control.pid)),
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        got = json.loads(r.stdout)
        assert got[str(control.pid)].startswith("read:") and CANARY in got[str(control.pid)]
        assert got[str(sidecar.pid)] == "denied"
    finally:
        for p in (sidecar, control):
            p.terminate()
            p.wait(10)
