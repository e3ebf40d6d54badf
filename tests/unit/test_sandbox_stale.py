"""Sweeping work dirs of sandboxes that were killed outright, and only those."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from sidecar.sandbox import stale


def _dir(tmp: Path, name: str, owner: str | None) -> Path:
    d = tmp / (stale.PREFIX + name)
    d.mkdir()
    (d / "data").write_text("x")
    if owner is not None:
        (d / stale.OWNER).write_text(owner)
    return d


def test_only_dirs_whose_owner_is_gone_are_removed(tmp_path: Path) -> None:
    """Live owner, fresh unowned dir, symlink and other names stay; dead/old/torn ones go."""
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead_ticks = Path(f"/proc/{dead.pid}/stat").read_bytes().rsplit(b")", 1)[1].split()[19]
    dead.wait()
    me = os.getpid()
    my_ticks = Path(f"/proc/{me}/stat").read_bytes().rsplit(b")", 1)[1].split()[19].decode()
    alive = _dir(tmp_path, "alive", f"{me} {my_ticks}\n")
    reused = _dir(tmp_path, "reused", f"{me} 1\n")  # our pid, another start time: pid reuse
    gone = _dir(tmp_path, "gone", f"{dead.pid} {dead_ticks.decode()}\n")
    fresh = _dir(tmp_path, "fresh", None)
    old = _dir(tmp_path, "old", None)
    torn = _dir(tmp_path, "torn", "12")
    past = time.time() - stale.UNOWNED_GRACE_S - 10
    os.utime(old, (past, past))
    target = tmp_path / "elsewhere"
    target.mkdir()
    (tmp_path / (stale.PREFIX + "link")).symlink_to(target)
    other = tmp_path / "unrelated"
    other.mkdir()

    removed = set(stale.sweep(str(tmp_path)))

    assert removed == {str(reused), str(gone), str(old), str(torn)}
    assert alive.is_dir() and fresh.is_dir() and target.is_dir() and other.is_dir()
    assert not reused.exists() and not gone.exists() and not old.exists() and not torn.exists()


def test_mark_owner_makes_a_dir_survive_the_sweep(tmp_path: Path) -> None:
    """A dir marked by this (live) process is never swept."""
    d = tmp_path / (stale.PREFIX + "mine")
    d.mkdir()
    stale.mark_owner(str(d))
    past = time.time() - stale.UNOWNED_GRACE_S - 10
    os.utime(d, (past, past))
    assert stale.sweep(str(tmp_path)) == []
    assert d.is_dir()
