"""The CI guard: without podman the real-container test skips, unless CI requires it.

Runs pytest on the podman test in a child process whose PATH has none of the
tools, once as a developer would (a skip that names what is missing) and once
as ``.ci/run`` does (``BORESCOPE_REQUIRE_PODMAN=1``: a failure).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.podman.build import REPO

TEST = "tests/podman/test_podman_e2e.py::test_the_pod_spec_is_the_injectors"


def run_without_tools(tmp_path: Path, require: bool) -> subprocess.CompletedProcess[str]:
    """pytest on one podman test with an empty PATH (so no podman, buildah, ...)."""
    env = {k: v for k, v in os.environ.items() if k != "BORESCOPE_REQUIRE_PODMAN"}
    env["PATH"] = str(tmp_path)  # an empty directory: shutil.which finds nothing
    if require:
        env["BORESCOPE_REQUIRE_PODMAN"] = "1"
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", TEST],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_missing_podman_skips_with_the_reason(tmp_path: Path) -> None:
    """Without the tools (and no CI flag) the test is skipped, naming what is missing."""
    proc = run_without_tools(tmp_path, require=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 skipped" in proc.stdout
    assert "missing podman, buildah" in proc.stdout
    assert ".ci/podman-setup.sh" in proc.stdout


def test_missing_podman_fails_when_ci_requires_it(tmp_path: Path) -> None:
    """With BORESCOPE_REQUIRE_PODMAN=1 (as .ci/run sets) the same run is a failure."""
    proc = run_without_tools(tmp_path, require=True)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "BORESCOPE_REQUIRE_PODMAN=1 makes this a failure" in proc.stdout
    assert "skipped" not in proc.stdout.splitlines()[-1]
