"""Remove what a sandbox killed outright (SIGKILL, OOM, a CI timeout) left in /tmp.

Its processes cannot outlive it (the pod's pid 1 dies with the harness, see
``podns``), and its mounts lived in namespaces that died with them, but its
work dir stays. Each work dir records its owner (pid and start time); a new
sandbox removes the dirs whose owner is gone. A dir without an owner file is
being created right now, unless it is old.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time

PREFIX = "borescope-sandbox-"
OWNER = "owner"
UNOWNED_GRACE_S = 600.0


def _start_ticks(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return int(stat.rsplit(b")", 1)[1].split()[19])


def mark_owner(workdir: str) -> None:
    """Record this process (pid + start time: a pid alone is reused) as the dir's owner."""
    pid = os.getpid()
    # Write then rename: a concurrent sweep() must never read a half-written
    # owner file (it would take it for a dead owner and remove a live dir).
    tmp = os.path.join(workdir, f".{OWNER}.{pid}")
    with open(tmp, "w") as f:
        f.write(f"{pid} {_start_ticks(pid)}\n")
    os.rename(tmp, os.path.join(workdir, OWNER))


def _owner_alive(workdir: str) -> bool:
    try:
        with open(os.path.join(workdir, OWNER)) as f:
            pid_s, ticks_s = f.read().split()
    except FileNotFoundError:
        with contextlib.suppress(FileNotFoundError):
            return time.time() - os.stat(workdir).st_mtime < UNOWNED_GRACE_S
        return True  # vanished meanwhile: nothing to do
    except ValueError:
        return False  # a torn or foreign file: the owner died while writing it
    return str(_start_ticks(int(pid_s))) == ticks_s


def sweep(tmp: str | None = None) -> list[str]:
    """Remove this user's sandbox work dirs whose owner is dead; returns what was removed."""
    tmp = tmp or tempfile.gettempdir()
    removed = []
    try:
        names = os.listdir(tmp)
    except FileNotFoundError:
        return []
    for name in names:
        path = os.path.join(tmp, name)
        if not name.startswith(PREFIX):
            continue
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            continue
        # Only real dirs of our own: never follow a symlink, never touch another user's.
        if not os.path.isdir(path) or os.path.islink(path) or st.st_uid != os.getuid():
            continue
        if not _owner_alive(path):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed
