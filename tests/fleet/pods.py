"""N sandbox pods sharing one bearer token: the fleet the fleet tests and bench_fleet ask.

Each pod is a real ``sidecar.sandbox`` pod (PID/network/mount namespaces, a
chroot'd shell-less demo app, its own sidecar process behind its own port).
Replicas of one deployment share the token Secret, so every sidecar here
accepts the same token (``token_sha256`` beside the pod's own hash file).
Pods are started one after another: the sandbox's stale-dir sweep races with
a work dir being created in parallel (reported to the lead).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field

from sidecar.sandbox.harness import Sandbox
from sidecar.sandbox.start import start_sandbox


@dataclass
class Pods:
    """Running sandbox pods and the token every one of them accepts."""

    token: str
    pods: list[Sandbox] = field(default_factory=list)

    @property
    def addresses(self) -> list[str]:
        """Each pod's sidecar address, in pod order."""
        return [p.address for p in self.pods]


@contextlib.contextmanager
def started_pods(n: int, *, interval: float = 1.0, token: str = "") -> Iterator[Pods]:
    """Start ``n`` sandbox pods (needs root) accepting ``token`` (default: a new one);
    stop them all on exit."""
    token = token or secrets.token_urlsafe(24)
    digest = hashlib.sha256(token.encode()).hexdigest()
    pods = Pods(token)
    try:
        for _ in range(n):
            pods.pods.append(
                start_sandbox("pod", interval=interval, settings=[f"token_sha256={digest}"])
            )
        yield pods
    finally:
        for p in pods.pods:
            p.close()


def is_root() -> bool:
    """The sandbox pod needs root."""
    return os.geteuid() == 0
