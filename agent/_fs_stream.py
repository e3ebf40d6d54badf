"""Streaming reads of an open regular file: bounded preads, ordered sha256, downloads.

Imports nothing from the rest of the package but results: callers hand in an
fd that the confined resolver already opened and checked.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor

from agent.results.fs import DownloadDone, FileInfo

#: Read and hash in pieces of this size (also the default download chunk).
CHUNK = 1 << 20


def pread_upto(fd: int, want: int, offset: int) -> bytes:
    """Up to ``want`` bytes at ``offset``; short only at end of file."""
    parts: list[bytes] = []
    got = 0
    while got < want:
        b = os.pread(fd, want - got, offset + got)
        if not b:
            break
        parts.append(b)
        got += len(b)
    return parts[0] if len(parts) == 1 else b"".join(parts)


def hash_range(fd: int, h: hashlib._Hash, start: int, end: int) -> int:
    """Feed bytes [start, end) into ``h``; returns how many were there."""
    pos = start
    while pos < end:
        b = os.pread(fd, min(CHUNK, end - pos), pos)
        if not b:
            break
        h.update(b)
        pos += len(b)
    return pos - start


class OrderedHasher:
    """sha256 fed on a helper thread, in order, one chunk behind the caller.

    hashlib releases the GIL on large buffers, so hashing chunk N overlaps
    reading chunk N+1 and sending chunk N. At most one chunk is pending.
    """

    def __init__(self) -> None:
        self.h = hashlib.sha256()
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="sha256")
        self._pending: Future[None] | None = None

    def update(self, data: bytes) -> None:
        if self._pending is not None:
            self._pending.result()
        self._pending = self._pool.submit(self.h.update, data)

    def hexdigest(self) -> str:
        if self._pending is not None:
            self._pending.result()
            self._pending = None
        return self.h.hexdigest()

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


class Download:
    """Stream a file from an offset and hash bytes [0, end).

    The end is the size when the download began: a log that keeps growing does
    not stream forever. If the file shrinks, the download stops where the data
    stops. Either way ``done().changed_during_read`` says so.
    """

    def __init__(self, fd: int, info: FileInfo, offset: int, chunk: int) -> None:
        self.fd = fd
        self.info = info
        self.offset = offset
        self.chunk = chunk
        self._hash = OrderedHasher()
        self._pos = offset
        self._short = False

    def close(self) -> None:
        """Stop the hashing thread (the download may have been abandoned)."""
        self._hash.close()

    def chunks(self) -> Iterator[tuple[int, bytes]]:
        """(offset, data) pieces of at most ``chunk`` bytes, in order.

        On resume the prefix [0, offset) is hashed here first, from the file as
        it is now, so the final hash covers the whole file.
        """
        if self.offset and hash_range(self.fd, self._hash.h, 0, self.offset) < self.offset:
            self._short = True
            return
        end = self.info.size
        while self._pos < end:
            b = os.pread(self.fd, min(self.chunk, end - self._pos), self._pos)
            if not b:
                self._short = True  # truncated while we read
                return
            self._hash.update(b)
            start = self._pos
            self._pos += len(b)
            yield start, b

    def done(self) -> DownloadDone:
        st = os.fstat(self.fd)
        changed = self._short or st.st_size != self.info.size or st.st_mtime != self.info.mtime
        return DownloadDone(
            size=self._pos, sha256=self._hash.hexdigest(), changed_during_read=changed
        )
