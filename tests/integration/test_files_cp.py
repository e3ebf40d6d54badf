# ruff: noqa: F811  (pytest fixtures are parameters named like the imported fixture)
"""``borescope cp`` never writes outside the destination, verifies, and resumes.

Real downloads from a sidecar whose container is a hostile chrooted tree,
into real temporary directories with planted symlinks and part files.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.hostile_root import Target, is_root

# The shared module-scoped fixture, imported under the name the tests use.
from tests.integration.hostile_root import sidecar_target as target  # noqa: F401
from tui.transfer import PART_SUFFIX, TransferError, download

pytestmark = [
    pytest.mark.skipif(not is_root(), reason="needs root: mount namespace, chroot, mknod"),
    pytest.mark.timeout(60),
]
ROOT = Path(__file__).resolve().parents[2]


def blob_in(target: Target, rel: str, size: int = 5 * (1 << 20) + 17) -> bytes:
    data = os.urandom(size)
    (target.h.root / rel).write_bytes(data)
    return data


def test_download_writes_only_the_basename(target: Target, tmp_path: Path) -> None:
    """A download lands as DEST/basename, verified, and leaves no part file behind."""
    data = blob_in(target, "app/data.bin")
    res = download(target.r.client, "/app/data.bin", str(tmp_path), container=target.sel.id)
    assert res.path == str(tmp_path / "data.bin")
    assert (tmp_path / "data.bin").read_bytes() == data
    assert res.sha256 == hashlib.sha256(data).hexdigest()
    assert os.listdir(tmp_path) == ["data.bin"]
    assert (tmp_path / "data.bin").stat().st_mode & 0o777 == 0o600


def test_symlink_at_destination_is_refused(target: Target, tmp_path: Path) -> None:
    """A symlink planted at DEST/name (or at the part file) is never written through, even with --force."""
    blob_in(target, "app/victim.bin", 1000)
    outside = tmp_path / "outside"
    outside.write_bytes(b"untouched")
    dest = tmp_path / "dest"
    dest.mkdir()
    os.symlink(outside, dest / "victim.bin")
    for force in (False, True):
        with pytest.raises(TransferError, match="symlink"):
            download(
                target.r.client, "/app/victim.bin", str(dest), container=target.sel.id, force=force
            )
    os.unlink(dest / "victim.bin")
    os.symlink(outside, dest / f".victim.bin{PART_SUFFIX}")
    with pytest.raises(TransferError, match="not a regular file"):
        download(target.r.client, "/app/victim.bin", str(dest), container=target.sel.id)
    assert outside.read_bytes() == b"untouched"


def test_existing_file_needs_force(target: Target, tmp_path: Path) -> None:
    """An existing file is not replaced without --force, and is replaced atomically with it."""
    data = blob_in(target, "app/keep.bin", 2000)
    (tmp_path / "keep.bin").write_bytes(b"mine")
    with pytest.raises(TransferError, match="already exists"):
        download(target.r.client, "/app/keep.bin", str(tmp_path), container=target.sel.id)
    assert (tmp_path / "keep.bin").read_bytes() == b"mine"
    download(target.r.client, "/app/keep.bin", str(tmp_path), container=target.sel.id, force=True)
    assert (tmp_path / "keep.bin").read_bytes() == data


def test_remote_dotdot_and_root_are_refused(target: Target, tmp_path: Path) -> None:
    """Remote paths whose basename is '..' or empty are refused before anything is written."""
    for remote in ("/app/..", "/", "/app/."):
        with pytest.raises(TransferError):
            download(target.r.client, remote, str(tmp_path), container=target.sel.id)
    assert os.listdir(tmp_path) == []


def test_interrupted_download_resumes(target: Target, tmp_path: Path) -> None:
    """An interrupted download keeps its part file; the next run resumes from it and verifies."""
    data = blob_in(target, "app/big.bin", 6 * (1 << 20))

    def stop_midway(done: int, total: int) -> None:
        if done >= 3 * (1 << 20):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        download(
            target.r.client,
            "/app/big.bin",
            str(tmp_path),
            container=target.sel.id,
            progress=stop_midway,
        )
    part = tmp_path / f".big.bin{PART_SUFFIX}"
    assert part.exists() and not (tmp_path / "big.bin").exists()
    kept = part.stat().st_size
    assert kept >= 3 * (1 << 20)
    res = download(target.r.client, "/app/big.bin", str(tmp_path), container=target.sel.id)
    assert res.resumed_from == kept
    assert (tmp_path / "big.bin").read_bytes() == data and not part.exists()


def test_corrupt_part_file_is_detected(target: Target, tmp_path: Path) -> None:
    """A part file whose bytes differ from the remote prefix fails the hash and is removed."""
    blob_in(target, "app/c.bin", 2 << 20)
    (tmp_path / f".c.bin{PART_SUFFIX}").write_bytes(b"\0" * (1 << 20))
    with pytest.raises(TransferError, match="sha256 mismatch"):
        download(target.r.client, "/app/c.bin", str(tmp_path), container=target.sel.id)
    assert os.listdir(tmp_path) == []


def test_cli_cp_hostile_name_and_as(target: Target, tmp_path: Path) -> None:
    """borescope cp refuses an escape-sequence name in one line (exit 1); --as NAME saves it."""
    env = {
        **os.environ,
        "BORESCOPE_TOKEN": target.r.token,
        "BORESCOPE_ADDR": target.r.address,
        "PYTHONPATH": str(ROOT),
    }
    cmd = [sys.executable, "-m", "tui.cli.main", "cp", "--container", target.sel.id]
    remote = "/names/\x1b[31mred\x1b[0m"
    p = subprocess.run(
        [*cmd, remote, str(tmp_path)], env=env, capture_output=True, timeout=30, check=False
    )
    assert p.returncode == 1 and b"\x1b" not in p.stderr and p.stderr.count(b"\n") == 1
    assert os.listdir(tmp_path) == []
    p = subprocess.run(
        [*cmd, remote, str(tmp_path), "--as", "red.txt"],
        env=env,
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert p.returncode == 0, p.stderr
    assert (tmp_path / "red.txt").read_bytes() == b"\x1b[31mred\x1b[0m"
