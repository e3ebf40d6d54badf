"""Capture a process's stdout/stderr to a file in the CRI log format the node writes.

Each line: ``<RFC3339Nano UTC> <stream> <F|P> <content>``. ``F`` ends a line;
a line longer than ``max_line`` (or cut by EOF) is written as ``P`` chunks
followed by the final ``F`` chunk, as containerd and CRI-O do. When the file
reaches ``max_bytes`` it is rotated by rename to ``<file>.1`` (the kubelet
rotates similarly), so the capture never grows without bound.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from typing import IO

MAX_LINE = 16 * 1024  # containerd's default line buffer
MAX_BYTES = 10 << 20  # the kubelet's default containerLogMaxSize


def timestamp(ns: int | None = None) -> str:
    """RFC 3339 with nanoseconds, UTC: ``2026-11-23T07:50:00.123456789Z``."""
    ns = time.time_ns() if ns is None else ns
    secs, frac = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{frac:09d}Z"


class CriWriter:
    """Appends CRI records to one file from several streams (thread-safe).

    Args:
        path: the capture file (created 0640).
        max_bytes: rotate to ``path + ".1"`` beyond this size.
    """

    def __init__(self, path: str, max_bytes: int = MAX_BYTES) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        self._size = os.fstat(self._fd).st_size

    def write(self, stream: str, content: bytes, final: bool) -> None:
        """One record: ``content`` must not contain a newline."""
        head = f"{timestamp()} {stream} {'F' if final else 'P'} ".encode()
        record = head + content + b"\n"
        with self._lock:
            if self._fd < 0:
                return
            if self._size + len(record) > self.max_bytes and self._size > 0:
                self._rotate()
            os.write(self._fd, record)
            self._size += len(record)

    def _rotate(self) -> None:
        os.replace(self.path, self.path + ".1")
        os.close(self._fd)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        self._size = 0

    def close(self) -> None:
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1


def pump(
    src: IO[bytes],
    stream: str,
    writer: CriWriter,
    on_line: Callable[[bytes], None] | None = None,
    max_line: int = MAX_LINE,
) -> threading.Thread:
    """Start a daemon thread copying ``src`` into ``writer`` until EOF.

    Args:
        src: the pipe to read (closed at EOF).
        stream: "stdout" or "stderr".
        writer: where records go.
        on_line: called with every complete line (without the newline), e.g.
            to learn the app's port from its first record.
        max_line: longer lines are split into P records.
    """

    def run() -> None:
        with src:
            while True:
                chunk = src.readline(max_line)
                if not chunk:
                    return
                final = chunk.endswith(b"\n")
                content = chunk[:-1] if final else chunk
                writer.write(stream, content, final)
                if final and on_line is not None:
                    on_line(content)

    t = threading.Thread(target=run, name=f"cri-{stream}", daemon=True)
    t.start()
    return t
