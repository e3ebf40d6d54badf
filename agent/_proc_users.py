"""User names as the *container* knows them: its own /etc/passwd, read confined.

A distroless app runs as e.g. uid 65532, which its image calls ``nonroot``
and the sidecar's image may not know at all. Each container's passwd is read
through ``open_regular_in_root`` (never a string join: a symlinked
/etc/passwd cannot point outside the container) and cached for ``TTL_S``.
Names fall back to the sidecar's passwd, then to the number.
"""

from __future__ import annotations

import os
import pwd
import threading
import time

from agent._common import text
from agent._fs_resolve import open_regular_in_root
from agent.errors import BorescopeError

TTL_S = 30.0
PASSWD_MAX = 1 << 20
MAX_CONTAINERS = 64


def parse_passwd(raw: str) -> dict[int, str]:
    """``name:x:uid:...`` lines -> {uid: name} (the first name of a uid wins)."""
    out: dict[int, str] = {}
    for line in raw.splitlines():
        parts = line.split(":")
        if len(parts) >= 3 and parts[2].isdigit() and parts[0]:
            out.setdefault(int(parts[2]), parts[0])
    return out


def _read_passwd(root: str) -> dict[int, str]:
    try:
        fd = open_regular_in_root(root, "/etc/passwd")
    except (BorescopeError, OSError):
        return {}  # no passwd in the image (scratch) or no access: numbers then
    try:
        return parse_passwd(text(os.read(fd, PASSWD_MAX)))
    except OSError:
        return {}
    finally:
        os.close(fd)


class Users:
    """uid -> name per container, refreshed every ``TTL_S`` seconds."""

    def __init__(self) -> None:
        self._by_root: dict[str, tuple[float, dict[int, str]]] = {}
        self._own: dict[int, str] = {}
        self._lock = threading.Lock()

    def table(self, root: str | None) -> dict[int, str]:
        """The passwd of the container whose root is ``root`` (None = none known)."""
        if root is None:
            return {}
        now = time.monotonic()
        with self._lock:
            hit = self._by_root.get(root)
        if hit is not None and now - hit[0] < TTL_S:
            return hit[1]
        names = _read_passwd(root)
        with self._lock:
            if len(self._by_root) >= MAX_CONTAINERS:
                self._by_root.clear()
            self._by_root[root] = (now, names)
        return names

    def own(self, uid: int) -> str:
        """The sidecar's own name for ``uid``, else the number."""
        name = self._own.get(uid)
        if name is None:
            try:
                name = pwd.getpwuid(uid).pw_name
            except KeyError:
                name = str(uid)
            if len(self._own) < 4096:
                self._own[uid] = name
        return name
