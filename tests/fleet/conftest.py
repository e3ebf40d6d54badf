"""Fixtures for fleet mode: several sandbox pods, one that refuses the fleet's token, a dead port."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from sidecar.sandbox.harness import Sandbox
from sidecar.sandbox.start import start_sandbox
from tests.fleet.pods import Pods, is_root, started_pods


@dataclass
class Fleet:
    """Three good pods (shared token), a pod with a token of its own, and a dead address."""

    good: Pods
    foreign: Sandbox
    dead: str

    @property
    def token(self) -> str:
        return self.good.token

    def addr(self, *, foreign: bool = True, dead: bool = True) -> str:
        """The --addr value naming the whole fleet (comma-separated)."""
        parts = list(self.good.addresses)
        if foreign:
            parts.append(self.foreign.address)
        if dead:
            parts.append(self.dead)
        return ",".join(parts)


def dead_address() -> str:
    """A loopback port with nothing listening (bound, then closed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"127.0.0.1:{port}"


@pytest.fixture(scope="session")
def fleet() -> Iterator[Fleet]:
    """The fleet for the whole session (tests that stop a sidecar resume it)."""
    if not is_root():
        pytest.skip("sandbox pods need root (namespaces, chroot); run the tests as root")
    with started_pods(3, interval=0.3) as pods:
        foreign = start_sandbox("pod", interval=2.0)
        try:
            yield Fleet(pods, foreign, dead_address())
        finally:
            foreign.close()
