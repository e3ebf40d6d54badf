"""Results about a container's filesystem: entries, reads, finds, mounts, usage."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class FileType(enum.IntEnum):
    """What a directory entry is (numbers match files.proto's FileType)."""

    UNSPECIFIED = 0
    REGULAR = 1
    DIRECTORY = 2
    SYMLINK = 3
    FIFO = 4
    SOCKET = 5
    CHAR_DEVICE = 6
    BLOCK_DEVICE = 7


@dataclass(frozen=True, slots=True)
class FileInfo:
    """One file as seen inside the container (lstat, or stat when followed).

    Attributes:
        name: display name (invalid UTF-8 replaced); ``raw_name`` has the bytes.
        path: absolute path inside the container.
        mode: permission bits including setuid/setgid/sticky (no type bits).
        user, group: from the container's /etc/passwd and /etc/group ("" = unknown).
        allocated: st_blocks * 512; much less than ``size`` means sparse.
        symlink_target: the link's text, never followed for listing.
        denied_reason: why reading it would be refused ("" = it would not).
        sensitive: the kind of sensitive mount it lives on ("" = none).
    """

    name: str
    raw_name: bytes
    path: str
    type: FileType
    mode: int
    uid: int
    gid: int
    user: str
    group: str
    size: int
    mtime: float
    dev: int
    ino: int
    nlink: int
    allocated: int
    symlink_target: str = ""
    denied_reason: str = ""
    sensitive: str = ""


@dataclass(frozen=True, slots=True)
class Listing:
    """One page of a directory.

    Attributes:
        next_token: opaque token for the next page ("" = last page).
        total: entries in the directory (after hiding dotfiles), as far as scanned.
        truncated: the directory has more entries than the sidecar scans.
    """

    dir: FileInfo
    entries: tuple[FileInfo, ...]
    next_token: str
    total: int
    truncated: bool


@dataclass(frozen=True, slots=True)
class ReadResult:
    """A bounded byte range of a regular file."""

    data: bytes
    offset: int
    file_size: int
    eof: bool
    info: FileInfo


@dataclass(frozen=True, slots=True)
class DownloadDone:
    """End of a download: bytes [0, size) hash to sha256.

    Attributes:
        changed_during_read: size or mtime moved while it was read; the hash
            is of what was read (and sent).
    """

    size: int
    sha256: str
    changed_during_read: bool


@dataclass(frozen=True, slots=True)
class HashResult:
    sha256: str
    size: int
    info: FileInfo


@dataclass(frozen=True, slots=True)
class FindResult:
    """Matches of a bounded search.

    Attributes:
        truncated: max_results, max_depth or the entry budget cut the search.
        scanned: entries looked at.
        errors: unreadable directories, summarised (bounded).
    """

    matches: tuple[FileInfo, ...]
    truncated: bool
    scanned: int
    errors: tuple[str, ...] = field(default=())


@dataclass(frozen=True, slots=True)
class Mount:
    """One line of the container's /proc/PID/mountinfo.

    Attributes:
        sensitive: "service-account token", "secret", ... when reads under it
            are denied by default ("" = an ordinary mount).
    """

    mount_id: int
    parent_id: int
    mount_point: str
    root: str
    fs_type: str
    source: str
    options: str
    super_options: str
    sensitive: str = ""


@dataclass(frozen=True, slots=True)
class FsUsage:
    """statvfs of one mount."""

    mount_point: str
    fs_type: str
    total_bytes: int
    used_bytes: int
    free_bytes: int
    total_inodes: int
    free_inodes: int


@dataclass(frozen=True, slots=True)
class DirUsage:
    """Allocated bytes and file count under one directory."""

    path: str
    bytes: int
    files: int


@dataclass(frozen=True, slots=True)
class DiskUsage:
    """Filesystems (statvfs) or a bounded du of a directory.

    Attributes:
        dirs: the directory's immediate subdirectories (and itself), largest first.
        truncated: the entry budget or depth bound cut the walk; numbers are lower bounds.
    """

    filesystems: tuple[FsUsage, ...] = ()
    dirs: tuple[DirUsage, ...] = ()
    truncated: bool = False
    total_bytes: int = 0
    errors: tuple[str, ...] = ()
