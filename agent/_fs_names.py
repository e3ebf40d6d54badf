"""User and group names from the container's own /etc/passwd and /etc/group.

The sidecar's names mean nothing for the app's files (uid 1000 is "app" in
one image and "node" in another), so they are read from the container's root,
through the confined resolver, with a size bound. A missing or unreadable
file just leaves names empty: ownership is still shown as numbers.
"""

from __future__ import annotations

import os
import threading

from agent._fs_resolve import open_regular_in_root
from agent.errors import BorescopeError

MAX_DB_BYTES = 1 << 20
_CACHE_MAX = 64

_lock = threading.Lock()
# (root, file) -> ((dev, ino, mtime_ns, size), {id: name})
_cache: dict[tuple[str, str], tuple[tuple[int, int, int, int], dict[int, str]]] = {}


def _parse(raw: bytes) -> dict[int, str]:
    """name:x:ID:... lines -> {ID: name}; the first name for an id wins."""
    out: dict[int, str] = {}
    for line in raw.splitlines():
        parts = line.split(b":")
        if len(parts) < 3 or line.startswith(b"#"):
            continue
        try:
            ident = int(parts[2])
        except ValueError:
            continue
        out.setdefault(ident, parts[0].decode("utf-8", "replace"))
    return out


def _table(root: str, file: str) -> dict[int, str]:
    try:
        fd = open_regular_in_root(root, file)
    except BorescopeError:
        return {}
    try:
        st = os.fstat(fd)
        key = (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size)
        with _lock:
            hit = _cache.get((root, file))
        if hit is not None and hit[0] == key:
            return hit[1]
        table = _parse(os.pread(fd, MAX_DB_BYTES, 0))
    finally:
        os.close(fd)
    with _lock:
        if len(_cache) >= _CACHE_MAX:
            _cache.clear()  # roots come and go with restarts; a rare full reset is fine
        _cache[(root, file)] = (key, table)
    return table


class Names:
    """uid/gid -> name for one container root, read once per use."""

    def __init__(self, root: str) -> None:
        self.root = root
        self._users: dict[int, str] | None = None
        self._groups: dict[int, str] | None = None

    def user(self, uid: int) -> str:
        if self._users is None:
            self._users = _table(self.root, "/etc/passwd")
        return self._users.get(uid, "")

    def group(self, gid: int) -> str:
        if self._groups is None:
            self._groups = _table(self.root, "/etc/group")
        return self._groups.get(gid, "")
