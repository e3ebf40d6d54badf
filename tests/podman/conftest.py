"""Fixtures for the real-container test: images built once, one pod per session.

Without podman (or root) these tests skip, unless ``BORESCOPE_REQUIRE_PODMAN=1``
(set by ``.ci/run``) turns the skip into a failure: in CI a missing engine
must not pass silently.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.podman.build import BuildError, Images, build_all, missing_tools
from tests.podman.pod import PodmanPod, start_pod


def _require_podman() -> None:
    problems = []
    missing = missing_tools()
    if missing:
        problems.append(f"missing {', '.join(missing)} (install with .ci/podman-setup.sh)")
    if os.geteuid() != 0:
        problems.append("rootful podman and nsenter need root")
    if not problems:
        return
    reason = "podman e2e: " + "; ".join(problems)
    if os.environ.get("BORESCOPE_REQUIRE_PODMAN") == "1":
        pytest.fail(f"{reason} (BORESCOPE_REQUIRE_PODMAN=1 makes this a failure)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def podman_images() -> Images:
    """The base, sidecar and app images (built on first use, then found by input hash)."""
    _require_podman()
    try:
        return build_all()
    except BuildError as e:
        pytest.fail(str(e), pytrace=False)


@pytest.fixture(scope="session")
def podman_pod(podman_images: Images) -> Iterator[PodmanPod]:
    """The injected pod, running under podman; removed after the session."""
    try:
        pod = start_pod(podman_images)
    except BuildError as e:
        pytest.fail(str(e), pytrace=False)
    try:
        yield pod
    finally:
        pod.remove()
