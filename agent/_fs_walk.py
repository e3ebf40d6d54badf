"""Bounded walks of a container's tree: find, du, and statvfs per mount.

A walk starts from a confined fd and descends only with
``openat(dirfd, name, O_DIRECTORY|O_NOFOLLOW)``: one component at a time,
never through a symlink, so it cannot leave the root. It does not enter the
container's /proc, /sys and similar pseudo filesystems unless config allows.
Depth, results and entries scanned are bounded; when a bound cuts the walk
the result says ``truncated``.
"""

from __future__ import annotations

import fnmatch
import os
import posixpath
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from agent._fs import ContainerFs, file_type, normalize
from agent._fs_resolve import PSEUDO_FS, fs_type, open_in_root
from agent.errors import BorescopeError
from agent.results.fs import (
    DirUsage,
    DiskUsage,
    FileInfo,
    FileType,
    FindResult,
    FsUsage,
    Mount,
)

DEFAULT_DEPTH = 16
MAX_DEPTH = 256
DEFAULT_RESULTS = 1000
MAX_RESULTS = 10_000
DEFAULT_BUDGET = 200_000
MAX_ERRORS = 20
# Mounts whose statvfs says nothing about disk space.
_NOT_DISKS = frozenset(
    {
        "proc", "sysfs", "cgroup", "cgroup2", "devpts", "mqueue", "debugfs", "tracefs",
        "securityfs", "bpf", "configfs", "fusectl", "pstore", "binfmt_misc", "autofs",
        "hugetlbfs", "nsfs", "efivarfs", "rpc_pipefs",
    }
)  # fmt: skip


@dataclass
class _Walk:
    """Shared state of one bounded walk."""

    max_depth: int
    budget: int
    allow_pseudo: bool
    scanned: int = 0
    truncated: bool = False
    errors: list[str] | None = None

    def error(self, text: str) -> None:
        if self.errors is None:
            self.errors = []
        if len(self.errors) < MAX_ERRORS:
            self.errors.append(text)
        elif len(self.errors) == MAX_ERRORS:
            self.errors.append("... more errors not shown")


def _names(w: _Walk, dfd: int, dpath: str) -> list[str]:
    """Sorted names in ``dfd``, counting each against the entry budget."""
    names: list[str] = []
    try:
        with os.scandir(dfd) as it:
            for e in it:
                if w.scanned >= w.budget:
                    w.truncated = True
                    break
                w.scanned += 1
                names.append(e.name)
    except OSError as e:
        w.error(f"{dpath}: {e.strerror}")
    names.sort()
    return names


def _open_child(w: _Walk, dfd: int, name: str, path: str) -> int | None:
    """An fd for subdirectory ``name`` (never through a symlink), or None to skip it."""
    try:
        cfd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dfd)
    except FileNotFoundError:
        return None
    except OSError as e:
        w.error(f"{path}: {e.strerror}")
        return None
    if not w.allow_pseudo and fs_type(cfd) in PSEUDO_FS:
        os.close(cfd)  # the container's /proc or /sys: not walked (allow_proc_sys)
        return None
    return cfd


def _entries(
    w: _Walk, dfd: int, dpath: str, depth: int
) -> Iterator[tuple[str, str, os.stat_result, int]]:
    """(name, path, lstat, depth) of every entry under ``dfd``, depth first, bounded."""
    for name in _names(w, dfd, dpath):
        path = posixpath.join(dpath, name)
        try:
            st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
        except FileNotFoundError:
            continue  # removed since the scan
        except OSError as e:
            w.error(f"{path}: {e.strerror}")
            continue
        yield name, path, st, depth
        if not stat.S_ISDIR(st.st_mode):
            continue
        if depth + 1 > w.max_depth:
            w.truncated = True
            continue
        cfd = _open_child(w, dfd, name, path)
        if cfd is None:
            continue
        try:
            yield from _entries(w, cfd, path, depth + 1)
        finally:
            os.close(cfd)
        if w.scanned >= w.budget:
            return


def _open_dir(fs: ContainerFs, path: str) -> int:
    return open_in_root(
        fs.root, path, os.O_RDONLY | os.O_DIRECTORY, allow_proc_sys=fs.policy.allow_proc_sys
    )


def find(
    fs: ContainerFs,
    path: str,
    *,
    glob: str = "",
    name: str = "",
    min_size: int | None = None,
    max_size: int | None = None,
    newer_than: float = 0.0,
    file_kind: FileType = FileType.UNSPECIFIED,
    max_depth: int = 0,
    max_results: int = 0,
    budget: int = DEFAULT_BUDGET,
) -> FindResult:
    """Entries under ``path`` matching every given criterion (like find(1)).

    Args:
        glob: fnmatch pattern on the name ("*.log").
        name: exact name.
        newer_than: mtime strictly after this epoch time (0 = any).
        max_depth: 0 = DEFAULT_DEPTH; clamped to MAX_DEPTH.
        max_results: 0 = DEFAULT_RESULTS; clamped to MAX_RESULTS.
        budget: entries scanned at most.
    """
    path = normalize(path)
    limit = min(max_results or DEFAULT_RESULTS, MAX_RESULTS)
    w = _Walk(min(max_depth or DEFAULT_DEPTH, MAX_DEPTH), budget, fs.policy.allow_proc_sys)
    checks: list[Callable[[str, os.stat_result], bool]] = []
    if glob:
        checks.append(lambda n, st: fnmatch.fnmatchcase(n, glob))
    if name:
        checks.append(lambda n, st: n == name)
    if min_size is not None:
        checks.append(lambda n, st: st.st_size >= min_size)
    if max_size is not None:
        checks.append(lambda n, st: st.st_size <= max_size)
    if newer_than:
        checks.append(lambda n, st: st.st_mtime > newer_than)
    if file_kind != FileType.UNSPECIFIED:
        checks.append(lambda n, st: file_type(st.st_mode) == file_kind)
    matches: list[FileInfo] = []
    dfd = _open_dir(fs, path)
    try:
        for n, p, st, _depth in _entries(w, dfd, path, 1):
            if all(c(n, st) for c in checks):
                if len(matches) >= limit:
                    w.truncated = True
                    break
                matches.append(fs.entry_info(st, p))
    finally:
        os.close(dfd)
    return FindResult(tuple(matches), w.truncated, w.scanned, tuple(w.errors or ()))


def du(fs: ContainerFs, path: str, max_depth: int = 0, max_entries: int = 0) -> DiskUsage:
    """Allocated bytes under ``path``, per immediate subdirectory, largest first.

    Hard links are counted once; other filesystems mounted below are included
    (like du without -x) except pseudo filesystems.
    """
    path = normalize(path)
    w = _Walk(
        min(max_depth or MAX_DEPTH, MAX_DEPTH),
        min(max_entries or DEFAULT_BUDGET, 10 * DEFAULT_BUDGET),
        fs.policy.allow_proc_sys,
    )
    per: dict[str, list[int]] = {}
    seen: set[tuple[int, int]] = set()
    total = files = 0
    top = ""
    dfd = _open_dir(fs, path)
    try:
        for n, _p, st, depth in _entries(w, dfd, path, 1):
            if depth == 1:
                top = n  # depth first: a top-level entry comes before everything under it
            if st.st_nlink > 1 and not stat.S_ISDIR(st.st_mode):
                key = (st.st_dev, st.st_ino)
                if key in seen:
                    continue
                if len(seen) < 1_000_000:
                    seen.add(key)
            size = st.st_blocks * 512
            total += size
            files += not stat.S_ISDIR(st.st_mode)
            slot = per.setdefault(posixpath.join(path, top), [0, 0])
            slot[0] += size
            slot[1] += not stat.S_ISDIR(st.st_mode)
    finally:
        os.close(dfd)
    dirs = [DirUsage(p, b, f) for p, (b, f) in per.items()]
    dirs.sort(key=lambda d: (-d.bytes, d.path))
    dirs.insert(0, DirUsage(path, total, files))
    return DiskUsage(
        dirs=tuple(dirs[:1001]),
        truncated=w.truncated,
        total_bytes=total,
        errors=tuple(w.errors or ()),
    )


def _statvfs(fs: ContainerFs, mount_point: str, fs_kind: str) -> FsUsage:
    fd = open_in_root(fs.root, mount_point, os.O_PATH, allow_proc_sys=True)
    try:
        v = os.fstatvfs(fd)
    finally:
        os.close(fd)
    total = v.f_blocks * v.f_frsize
    free = v.f_bavail * v.f_frsize
    used = (v.f_blocks - v.f_bfree) * v.f_frsize
    return FsUsage(mount_point, fs_kind, total, used, free, v.f_files, v.f_ffree)


def filesystems(fs: ContainerFs) -> DiskUsage:
    """statvfs of every disk-like mount of the container (not /proc, /sys, ...).

    The root always comes first, even when it is not a mount of its own (a
    chroot into a directory): it is where the app writes by default.
    """
    mounts = [m for m in fs.mounts() if m.fs_type not in _NOT_DISKS]
    if not any(m.mount_point == "/" for m in mounts):
        mounts.insert(0, Mount(0, 0, "/", "/", "(root directory)", "", "", ""))
    out: list[FsUsage] = []
    errors: list[str] = []
    seen: set[str] = set()
    for m in mounts:
        if m.mount_point in seen:
            continue
        seen.add(m.mount_point)
        try:
            out.append(_statvfs(fs, m.mount_point, m.fs_type))
        except BorescopeError as e:
            errors.append(f"{m.mount_point}: {e}")
        except OSError as e:
            errors.append(f"{m.mount_point}: {e.strerror}")
    return DiskUsage(filesystems=tuple(out), errors=tuple(errors[:MAX_ERRORS]))
