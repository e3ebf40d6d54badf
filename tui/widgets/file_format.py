"""Formatting of file metadata for the CLI and the Files screen (no Textual here)."""

from __future__ import annotations

import os
import re
import stat
import time
from typing import Any

from protos import files_pb2
from tui.sanitize import sanitize
from tui.units import human_bytes

TYPE_CHAR = {
    files_pb2.FILE_TYPE_REGULAR: "-",
    files_pb2.FILE_TYPE_DIRECTORY: "d",
    files_pb2.FILE_TYPE_SYMLINK: "l",
    files_pb2.FILE_TYPE_FIFO: "p",
    files_pb2.FILE_TYPE_SOCKET: "s",
    files_pb2.FILE_TYPE_CHAR_DEVICE: "c",
    files_pb2.FILE_TYPE_BLOCK_DEVICE: "b",
}
TYPE_BY_LETTER = {v: k for k, v in TYPE_CHAR.items()} | {"f": files_pb2.FILE_TYPE_REGULAR}
_TYPE_BITS = {
    "-": stat.S_IFREG,
    "d": stat.S_IFDIR,
    "l": stat.S_IFLNK,
    "p": stat.S_IFIFO,
    "s": stat.S_IFSOCK,
    "c": stat.S_IFCHR,
    "b": stat.S_IFBLK,
}
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_SIZE = re.compile(r"^(\d+(?:\.\d+)?)([kmgt]?)i?b?$", re.IGNORECASE)


def path_fields(path: str) -> dict[str, Any]:
    """Request fields naming ``path``: ``path`` when it is UTF-8, else ``raw_path`` bytes too.

    A name that is not valid UTF-8 (argv and the tree keep such bytes as
    surrogate escapes) cannot travel in a protobuf string; ``raw_path`` carries
    the exact bytes and the sidecar prefers it.
    """
    raw = os.fsencode(path)
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return {"path": raw.decode("utf-8", "replace"), "raw_path": raw}
    return {"path": path}


def entry_path(info: files_pb2.FileInfo, parent: str) -> str:
    """The full path of a listed entry, exact bytes kept (surrogate-escaped str)."""
    if info.raw_path:
        return os.fsdecode(info.raw_path)
    name = os.fsdecode(info.raw_name) if info.raw_name else info.name
    return parent.rstrip("/") + "/" + name


def mode_string(info: files_pb2.FileInfo) -> str:
    """'-rw-r--r--' like ls -l."""
    return stat.filemode(_TYPE_BITS.get(TYPE_CHAR.get(info.type, "?"), 0) | info.mode)


def owner(info: files_pb2.FileInfo) -> tuple[str, str]:
    """(user, group) names from the container, else the numbers."""
    return sanitize(info.user) or str(info.uid), sanitize(info.group) or str(info.gid)


def short_time(seconds: float, now: float | None = None) -> str:
    """'Nov 23 07:51' for this year, 'Nov 23  2025' otherwise (like ls)."""
    now = time.time() if now is None else now
    t = time.localtime(seconds)
    if abs(now - seconds) < 180 * 86400:
        return time.strftime("%b %d %H:%M", t)
    return time.strftime("%b %d  %Y", t)


def display_name(info: files_pb2.FileInfo) -> str:
    """The entry's name, safe for a terminal, with ' -> target' for symlinks."""
    name = sanitize(info.raw_name.decode("utf-8", "replace") if info.raw_name else info.name)
    if info.type == files_pb2.FILE_TYPE_SYMLINK:
        name += " -> " + sanitize(info.symlink_target)
    return name


#: The name this module's callers use.
human_size = human_bytes


def parse_size(text: str) -> int:
    """'10M' / '1.5G' / '4096' -> bytes (binary units).

    Raises:
        ValueError: not a size.
    """
    m = _SIZE.match(text.strip())
    if not m:
        raise ValueError(f"not a size: {text!r} (examples: 4096, 10K, 1.5G)")
    mult = 1 << (10 * " kmgt".index(m.group(2).lower() or " "))
    return int(float(m.group(1)) * mult)


def parse_age(text: str) -> float:
    """'10m' / '2h' / '1d' -> seconds.

    Raises:
        ValueError: not a duration.
    """
    m = _DURATION.match(text.strip())
    if not m:
        raise ValueError(f"not a duration: {text!r} (examples: 90s, 10m, 2h, 1d)")
    return float(m.group(1)) * _UNIT_S[m.group(2)]
