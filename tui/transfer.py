"""Safe downloads to the engineer's disk (``borescope cp``, the Files screen's ``d``).

The remote side is not trusted (kubectl cp's CVEs came from trusting it):

* only a single *basename* is ever written, into the destination directory
  the user chose; ``..``, ``.``, names with ``/``, NUL or control characters
  are refused (``--as NAME`` picks a local name instead);
* files are created relative to the destination directory's fd with
  ``O_EXCL|O_NOFOLLOW``: a symlink planted at the destination is refused,
  never written through;
* bytes go to a hidden ``.NAME.borescope-part`` file; the final name appears
  only after the sha256 of the whole file matched the sidecar's, by an
  atomic rename that does not replace an existing file unless asked;
* an interrupted download keeps its part file and resumes from its size;
* a local failure (no space, quota, I/O error, unwritable destination) is a
  ``TransferError`` naming the file, never a traceback. When the disk is full
  (ENOSPC, EDQUOT) the part file is *removed*, so the download does not keep
  holding the space it could not finish with; other write errors keep it for
  a resume.
"""

from __future__ import annotations

import ctypes
import errno
import hashlib
import os
import stat
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TextIO

from protos import common_pb2, files_pb2
from tui.client import Client
from tui.widgets.file_format import path_fields

PART_SUFFIX = ".borescope-part"
RENAME_NOREPLACE = 1
MAX_NAME = 255

Progress = Callable[[int, int], None]
"""Called with (bytes done, total bytes) as chunks arrive."""


class TerminalProgress:
    """A one-line progress display (percent, bytes, rate) rewritten in place, 5 times a second."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.start = time.monotonic()
        self.last = 0.0

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if now - self.last < 0.2 and done != total:
            return
        self.last = now
        pct = f"{100 * done / total:5.1f}% " if total else ""
        rate = done / max(now - self.start, 1e-6) / (1 << 20)
        self.out.write(f"\r{pct}{done >> 20} / {total >> 20} MiB  {rate:.0f} MiB/s   ")
        self.out.flush()


class TransferError(Exception):
    """A download refused or failed; the message says why and what to do."""


@dataclass(frozen=True)
class Downloaded:
    """A finished download."""

    path: str
    size: int
    sha256: str
    resumed_from: int
    changed_during_read: bool


def safe_local_name(raw: bytes | str) -> str:
    """The remote basename as a local file name, or TransferError.

    Refuses what could leave the destination directory or confuse a
    terminal: empty, ``.``, ``..``, ``/``, NUL, control characters,
    invalid UTF-8 and over-long names.
    """
    if isinstance(raw, str):
        raw = raw.encode("utf-8", "surrogateescape")
    shown = raw.decode("utf-8", "backslashreplace").encode("unicode_escape").decode()
    if raw in (b"", b".", b".."):
        raise TransferError(f"refusing remote name {shown!r}: not a file name")
    if b"/" in raw or b"\0" in raw:
        raise TransferError(f"refusing remote name {shown!r}: it contains '/' or NUL")
    if any(c < 0x20 or c == 0x7F for c in raw):
        raise TransferError(
            f"refusing remote name {shown!r}: it contains control characters; "
            "pass --as NAME to pick a local name"
        )
    if len(raw) > MAX_NAME:
        raise TransferError(f"refusing remote name: longer than {MAX_NAME} bytes")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise TransferError(
            f"refusing remote name {shown!r}: not valid UTF-8; pass --as NAME"
        ) from None


def remote_basename(path: str) -> bytes:
    """The last component of a remote path as the user typed it."""
    return path.rstrip("/").rsplit("/", 1)[-1].encode("utf-8", "surrogateescape")


def _lstat(name: str, dfd: int) -> os.stat_result | None:
    try:
        return os.stat(name, dir_fd=dfd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def _rename(part: str, final: str, dfd: int, replace: bool) -> None:
    """Atomically move the part file to its final name (never over a file unless ``replace``)."""
    if replace:
        os.rename(part, final, src_dir_fd=dfd, dst_dir_fd=dfd)
        return
    libc = ctypes.CDLL(None, use_errno=True)
    rc = libc.renameat2(dfd, part.encode(), dfd, final.encode(), RENAME_NOREPLACE)
    if rc == 0:
        return
    e = ctypes.get_errno()
    if e == errno.EEXIST:
        raise TransferError(f"{final} appeared in the destination meanwhile; not replaced")
    if e in (errno.ENOSYS, errno.EINVAL):  # filesystem without RENAME_NOREPLACE
        if _lstat(final, dfd) is not None:
            raise TransferError(f"{final} appeared in the destination meanwhile; not replaced")
        os.rename(part, final, src_dir_fd=dfd, dst_dir_fd=dfd)
        return
    raise OSError(e, os.strerror(e), final)


def _open_part(part: str, dfd: int, resume: bool) -> tuple[int, int, hashlib._Hash]:
    """Open (or reopen for resume) the part file; (fd, offset, hash of its bytes)."""
    h = hashlib.sha256()
    st = _lstat(part, dfd)
    if st is not None:
        if not stat.S_ISREG(st.st_mode):
            raise TransferError(f"{part} in the destination is not a regular file; remove it")
        if resume:
            fd = os.open(part, os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dfd)
            while b := os.read(fd, 1 << 20):
                h.update(b)
            return fd, os.lseek(fd, 0, os.SEEK_CUR), h
        os.unlink(part, dir_fd=dfd)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    return os.open(part, flags, 0o600, dir_fd=dfd), 0, h


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def keep_chunk_memory() -> None:
    """Keep ~1 MiB receive buffers in the heap instead of mmap/trim per message.

    glibc would otherwise hand every chunk's buffer back to the kernel and
    fault it in again page by page (measured ~1.5 ms per MiB in a VM).
    """
    try:
        libc = ctypes.CDLL(None)
        libc.mallopt(-3, 16 << 20)  # M_MMAP_THRESHOLD
        libc.mallopt(-1, 256 << 20)  # M_TRIM_THRESHOLD
    except (OSError, AttributeError):
        pass  # not glibc: slower, still correct


def download(
    client: Client,
    remote_path: str,
    dest_dir: str,
    *,
    container: str = "",
    local_name: str | None = None,
    force: bool = False,
    resume: bool = True,
    progress: Progress | None = None,
    timeout: float | None = None,
) -> Downloaded:
    """Download ``remote_path`` into ``dest_dir`` safely (see the module docstring).

    Raises:
        TransferError: refused (names, symlinks, existing file), the hash did not match,
            or the local disk failed (no space: the part file is removed; else it is kept).
        grpc.RpcError: the sidecar refused or the connection broke (part file kept).
    """
    name = safe_local_name(local_name if local_name is not None else remote_basename(remote_path))
    keep_chunk_memory()
    part = f".{name}{PART_SUFFIX}"
    dest = os.path.join(dest_dir, name)
    try:
        dfd = os.open(dest_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as e:
        raise TransferError(f"cannot use {dest_dir} as the destination: {_why(e)}") from None
    try:
        st = _lstat(name, dfd)
        if st is not None and stat.S_ISLNK(st.st_mode):
            raise TransferError(f"{name} in {dest_dir} is a symlink; refusing to write through it")
        if st is not None and not force:
            raise TransferError(f"{name} already exists in {dest_dir}; pass --force to replace it")
        try:
            fd, offset, h = _open_part(part, dfd, resume)
        except OSError as e:
            raise TransferError(f"cannot create {dest}: {_why(e)}") from None
        try:
            try:
                done = _receive(client, remote_path, container, fd, offset, h, progress, timeout)
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as e:
            raise _local_failure(e, dest, part, dfd) from None
        if done.sha256 != h.hexdigest():
            os.unlink(part, dir_fd=dfd)
            why = " (the file changed while it was read)" if done.changed_during_read else ""
            raise TransferError(
                f"sha256 mismatch for {remote_path}{why}; the partial download was removed, retry"
            )
        try:
            _rename(part, name, dfd, force)
        except OSError as e:
            raise TransferError(
                f"cannot rename the verified download to {dest}: {_why(e)}; "
                f"it is kept as {os.path.join(dest_dir, part)}"
            ) from None
        return Downloaded(
            os.path.join(dest_dir, name), done.size, done.sha256, offset, done.changed_during_read
        )
    finally:
        os.close(dfd)


_FULL = (errno.ENOSPC, errno.EDQUOT)


def _why(e: OSError) -> str:
    """An OSError's reason in lower case, without Python's ``[Errno N]`` decoration."""
    return (e.strerror or str(e)).lower()


def _local_failure(e: OSError, dest: str, part: str, dfd: int) -> TransferError:
    """The one-line error for a write to the local disk that failed.

    A full disk (ENOSPC) or exhausted quota removes the part file: keeping it
    would leave the disk full, with a hidden file the user does not know about.
    Anything else keeps it, so that rerunning the command resumes.
    """
    what = "no space left on device" if e.errno == errno.ENOSPC else _why(e)
    shown = os.path.join(os.path.dirname(dest), part)
    if e.errno in _FULL:
        try:
            os.unlink(part, dir_fd=dfd)
            kept = "the partial download was removed; free some space and retry"
        except OSError:
            kept = f"remove the partial download {shown}, free some space and retry"
        return TransferError(f"{what} writing {dest}: {kept}")
    return TransferError(
        f"{what} writing {dest}: the partial download is kept as {shown}; rerun to resume"
    )


def _receive(  # noqa: PLR0917 - one private call site, named in order
    client: Client,
    remote_path: str,
    container: str,
    fd: int,
    offset: int,
    h: hashlib._Hash,
    progress: Progress | None,
    timeout: float | None,
) -> files_pb2.DownloadDone:
    req = files_pb2.DownloadRequest(
        container=common_pb2.ContainerSelector(id=container),
        offset=offset,
        **path_fields(remote_path),
    )
    stream = client.files.Download(req, metadata=client.metadata, timeout=timeout)
    pos = offset
    total = 0
    # Writing and hashing run on a helper thread, one chunk behind the receiver
    # (both release the GIL), so receiving chunk N+1 overlaps storing chunk N.
    pool = ThreadPoolExecutor(1, thread_name_prefix="cp-write")
    pending: Future[None] | None = None

    def store(data: bytes) -> None:
        _write_all(fd, data)
        h.update(data)

    try:
        for msg in stream:
            if msg.HasField("done"):
                if pending is not None:
                    pending.result()
                if msg.done.size != pos:
                    raise TransferError(
                        f"the sidecar ended at {msg.done.size} bytes but sent {pos}; retry"
                    )
                return msg.done
            if msg.HasField("info"):
                if msg.info.type != files_pb2.FILE_TYPE_REGULAR:
                    raise TransferError(f"{remote_path} is not a regular file")
                total = msg.info.size
                continue
            if msg.offset != pos:
                raise TransferError(f"chunk at offset {msg.offset}, expected {pos}; retry")
            if pending is not None:
                pending.result()  # a write error surfaces here, and memory stays bounded
            pending = pool.submit(store, msg.data)
            pos += len(msg.data)
            if progress is not None:
                progress(pos, total)
    finally:
        stream.cancel()  # type: ignore[no-untyped-call]
        # Finish what was received (after an interrupt too): the part file then
        # holds exactly the bytes counted, so a resume starts at the right offset.
        pool.shutdown(wait=True)
    raise TransferError(
        f"the download of {remote_path} ended without its checksum; rerun to resume"
    )
