"""Start the demo app inside its container: mounts, chroot, drop root, exec.

Run by the harness as ``nsenter --target PAUSE --pid --net -- python -m
sidecar.sandbox.appinit ROOT STDLIB EMPTY -- APP ARGS...``: this process is
already in the pod's PID and network namespaces. It makes its own mount
namespace (so every mount below disappears with the app and none ever reaches
the host), builds the container's view of its root, chroots into it, becomes
the app user and execs the interpreter. Like a container runtime, it keeps the
root read-only except ``/var/log/demo`` and ``/tmp``.
"""

from __future__ import annotations

import os
import sys

from sidecar.sandbox import _sys
from sidecar.sandbox.rootfs import (
    APP_BINARY,
    APP_GID,
    APP_UID,
    HIDDEN_STDLIB_DIRS,
    LOG_DIR,
    STDLIB_IN_ROOT,
)

DEVICES = ("null", "zero", "urandom", "random")


def setup_mounts(root: str, stdlib: str, empty: str) -> None:
    """Mount the container's view of ``root`` in the current (private) mount namespace."""
    # Private first: nothing mounted below may propagate back to the host.
    _sys.mount(None, "/", None, _sys.MS_REC | _sys.MS_PRIVATE)
    _sys.bind(root, root, readonly=False)
    for rw in (LOG_DIR, "/tmp"):  # noqa: S108 - the app root's /tmp, not the host's
        _sys.bind(root + rw, root + rw, readonly=False, extra=_sys.MS_NOSUID | _sys.MS_NODEV)
    lib = root + STDLIB_IN_ROOT
    _sys.bind(stdlib, lib, readonly=True, extra=_sys.MS_NOSUID | _sys.MS_NODEV)
    for hidden in HIDDEN_STDLIB_DIRS:
        if os.path.isdir(os.path.join(lib, hidden)):
            _sys.bind(empty, os.path.join(lib, hidden), readonly=True)
    # procfs of the pod's PID namespace (this process is in it), as a runtime mounts it.
    _sys.mount("proc", root + "/proc", "proc", _sys.MS_NOSUID | _sys.MS_NODEV | _sys.MS_NOEXEC)
    for dev in DEVICES:
        _sys.bind(f"/dev/{dev}", f"{root}/dev/{dev}", readonly=False, extra=_sys.MS_NOSUID)
    _sys.mount(None, root, None, _sys.MS_REMOUNT | _sys.MS_BIND | _sys.MS_RDONLY)


def enter(root: str) -> None:
    """chroot into ``root`` and become the app user for good."""
    os.chroot(root)
    os.chdir("/")
    os.setgroups([])
    os.setgid(APP_GID)
    os.setuid(APP_UID)
    _sys.prctl(_sys.PR_SET_NO_NEW_PRIVS, 1)


def app_env() -> dict[str, str]:
    """The app's environment: what the harness passed under ``APP_ENV_*``, renamed."""
    env = {k[len("APP_ENV_") :]: v for k, v in os.environ.items() if k.startswith("APP_ENV_")}
    env.setdefault("PATH", "/usr/local/bin:/usr/bin")  # what distroless images set
    env.setdefault("HOME", "/nonexistent")
    env.setdefault("LANG", "C.UTF-8")
    return env


def main(argv: list[str]) -> int:
    """``appinit ROOT STDLIB EMPTY -- ARGS...``; never returns on success."""
    if len(argv) < 5 or argv[3] != "--":
        print("usage: appinit ROOT STDLIB EMPTY -- ARGS...", file=sys.stderr)
        return 2
    root, stdlib, empty, args = argv[0], argv[1], argv[2], argv[4:]
    env = app_env()
    # Join the container's cgroups first, so the worker it starts is in them too.
    for d in filter(None, os.environ.get("SANDBOX_CGROUP_DIRS", "").split(os.pathsep)):
        with open(os.path.join(d, "cgroup.procs"), "w") as f:
            f.write(str(os.getpid()))
    _sys.unshare(_sys.CLONE_NEWNS)
    setup_mounts(root, stdlib, empty)
    enter(root)
    # argv[0] is the full path: Python finds its stdlib relative to it.
    os.execve(APP_BINARY, [APP_BINARY, *args], env)
    return 127  # pragma: no cover - execve does not return


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
