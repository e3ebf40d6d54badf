"""Pick the sandbox mode and start it: the one entry point tests and the CLI use."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

from sidecar.sandbox.harness import Sandbox, SandboxError
from sidecar.sandbox.local import LocalSandbox
from sidecar.sandbox.podns import PodSandbox

NOT_ROOT = (
    "not running as root: local mode (the demo app is a plain child process: "
    "no namespaces, no chroot, its root is the host's /)"
)


def start_sandbox(
    mode: str = "auto",
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    interval: float = 1.0,
    settings: Sequence[str] = (),
    notice: Callable[[str], None] | None = None,
    sidecar_as_app_user: bool = False,
    log_max_bytes: int = 5 << 20,
) -> Sandbox:
    """Start a sandbox and return it running (``close()`` it, or use ``with``).

    Args:
        mode: "pod" (needs root), "local", or "auto" (pod when root, else local).
        host: host address of the client-facing gRPC port.
        port: host port (0 = any free port).
        interval: seconds between the demo app's self-calls (log rate).
        settings: extra sidecar config as ``KEY=VALUE`` (``--set`` of ``borescope serve``).
        notice: told one line when auto mode falls back to local mode (and why) and
            when the app exits and is restarted.
        sidecar_as_app_user: pod mode: the sidecar runs as the app's uid with no
            capabilities (least privilege) instead of root.
        log_max_bytes: the app rotates its log file (rename to ``.1``) past this size.

    Raises:
        SandboxError: it could not start; the message says what to check.
    """
    if mode not in ("auto", "pod", "local"):
        raise SandboxError(f"unknown sandbox mode {mode!r}: use auto, pod or local")
    if mode == "auto" and os.geteuid() != 0:
        if notice is not None:
            notice(NOT_ROOT)
        mode = "local"
    kw = {
        "host": host,
        "port": port,
        "interval": interval,
        "settings": settings,
        "notice": notice,
        "log_max_bytes": log_max_bytes,
    }
    if mode == "local":
        return LocalSandbox(**kw).start()
    if os.geteuid() != 0:
        raise SandboxError("the sandbox pod needs root (namespaces, chroot); use local mode")
    try:
        return PodSandbox(sidecar_as_app_user=sidecar_as_app_user, **kw).start()
    except SandboxError as e:
        if mode == "pod":
            raise
        if notice is not None:
            notice(f"cannot build the sandbox pod ({e}); falling back to local mode")
        return LocalSandbox(**kw).start()
