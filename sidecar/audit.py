"""Per-RPC audit context: what the call touched, noted by servicers.

Servicers call ``note(container=..., pid=..., start_ticks=..., path=...)``
with the *resolved* object they acted on; the audit interceptor puts it in
the call's single audit record. Never note content (file bytes, env values,
log lines): the audit record must not carry any.
"""

from __future__ import annotations

import contextvars
import datetime
import fcntl
import json
import os
import stat
import threading
from collections.abc import Callable
from typing import Any

_object: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "borescope_audit_object", default=None
)
_identity: contextvars.ContextVar[str] = contextvars.ContextVar(
    "borescope_identity", default="anonymous"
)


def begin() -> dict[str, Any]:
    """Start a fresh object record (and anonymous identity) for this call; return it.

    gRPC reuses pool threads, and a thread keeps its context between calls: without
    this reset one caller's identity would leak into the next call's record.
    """
    obj: dict[str, Any] = {}
    _object.set(obj)
    _identity.set("anonymous")
    return obj


def note(**fields: Any) -> None:
    """Record what this call acts on (container, pid, start_ticks, path, signal, ...)."""
    obj = _object.get()
    if obj is not None:
        obj.update({k: v for k, v in fields.items() if v not in (None, "")})


def set_identity(identity: str) -> None:
    """Record who is calling (token id or certificate subject); set by auth."""
    _identity.set(identity)


def identity() -> str:
    """Who is calling, as far as auth established."""
    return _identity.get()


class AuditSinkError(OSError):
    """The audit sink cannot take a record; the sidecar refuses requests (fail closed)."""


class AuditSink:
    """Writes one JSON line per record to stdout or a file, and says when it cannot.

    Unlike a logging handler (which swallows write errors), ``write`` raises, so the
    audit interceptor can refuse a request whose audit record cannot be written.

    Args:
        path: a file (appended to, created 0600) or FIFO; "" = the process's stdout.
    """

    def __init__(self, path: str = "") -> None:
        self.path = path or "<stdout>"
        self.on_failure: Callable[[AuditSinkError], None] | None = None
        """Called (once) on the first failed write; the server turns health NOT_SERVING."""
        self.failed = False
        self._lock = threading.Lock()
        self._own_fd = bool(path)
        self._fd = 1
        if path:
            try:
                # O_NONBLOCK so a FIFO without a reader fails now (ENXIO) instead of hanging.
                fd = os.open(
                    path,
                    os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC | os.O_NONBLOCK,
                    0o600,
                )
            except OSError as e:
                raise AuditSinkError(
                    e.errno, f"cannot open audit_file {path}: {e.strerror}"
                ) from None
            if stat.S_ISFIFO(os.fstat(fd).st_mode):
                flags = fcntl.fcntl(fd, fcntl.F_GETFL)
                fcntl.fcntl(fd, fcntl.F_SETFL, flags & ~os.O_NONBLOCK)
            self._fd = fd

    def write(self, record: dict[str, Any]) -> None:
        """Append one record as a JSON line (a single write where the kernel allows).

        Raises:
            AuditSinkError: the sink failed (closed pipe, disk full, closed file).
        """
        line = {
            "timestamp": datetime.datetime.now(datetime.UTC).isoformat(timespec="microseconds"),
            "level": "info",
            "logger": "borescope.audit",
            **record,
        }
        data = (json.dumps(line, default=str, separators=(",", ":")) + "\n").encode()
        with self._lock:
            view = memoryview(data)
            try:
                while view:
                    n = os.write(self._fd, view)
                    view = view[n:]
            except OSError as e:
                err = AuditSinkError(e.errno, f"audit sink {self.path} failed: {e.strerror}")
                first, self.failed = not self.failed, True
                if first and self.on_failure is not None:
                    self.on_failure(err)
                raise err from None

    def close(self) -> None:
        """Close the file (stdout is left alone)."""
        with self._lock:
            if self._own_fd and self._fd >= 0:
                os.close(self._fd)
                self._fd = -1
