"""A container's filesystem, confined to its root: stat, list, read, download, hash.

Every path goes through :mod:`agent._fs_resolve`; after that only the fd is
used (fstat, pread, scandir on the fd, ``*at`` calls relative to it), so a
rename race cannot swap the object underneath. Reads are bounded by the
policy's ``max_read_bytes``; downloads and hashes stream in chunks.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import posixpath
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace

from agent._fs_mounts import mount_id_of, mounts_of
from agent._fs_names import Names
from agent._fs_resolve import (
    DAC_HINT,
    PSEUDO_FS,
    _readlink_fd,
    check_path,
    fs_type,
    open_in_root,
    open_regular_in_root,
)
from agent._fs_stream import CHUNK, Download, hash_range, pread_upto
from agent.errors import InvalidArgument, NotAllowed
from agent.results.fs import (
    FileInfo,
    FileType,
    HashResult,
    Listing,
    Mount,
    ReadResult,
)

DEFAULT_READ = 1 << 20
MIN_CHUNK = 16 << 10
MAX_CHUNK = 4 << 20
DEFAULT_PAGE = 1000
MAX_PAGE = 5000


@dataclass(frozen=True)
class FsPolicy:
    """What the config allows (sidecar Config maps onto this).

    Attributes:
        max_dir_entries: entries scanned per directory listing; more = truncated.
    """

    allow_proc_sys: bool = False
    allow_sensitive_paths: bool = False
    max_read_bytes: int = 4 << 20
    max_dir_entries: int = 100_000


def file_type(mode: int) -> FileType:
    """FileType of an st_mode."""
    for test, kind in (
        (stat.S_ISREG, FileType.REGULAR),
        (stat.S_ISDIR, FileType.DIRECTORY),
        (stat.S_ISLNK, FileType.SYMLINK),
        (stat.S_ISFIFO, FileType.FIFO),
        (stat.S_ISSOCK, FileType.SOCKET),
        (stat.S_ISCHR, FileType.CHAR_DEVICE),
        (stat.S_ISBLK, FileType.BLOCK_DEVICE),
    ):
        if test(mode):
            return kind
    return FileType.UNSPECIFIED


def normalize(path: str) -> str:
    """Lexically clean an absolute container path ("/a/./b/../c" -> "/a/c")."""
    check_path(path)
    out = posixpath.normpath(path)
    return "/" + out.lstrip("/")  # normpath keeps a leading "//"


def _pages_token(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode()


def _after(token: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(token.encode())
    except (binascii.Error, ValueError):
        raise InvalidArgument("page_token is not one this server gave out") from None


class ContainerFs:
    """One container's filesystem as the sidecar may see it.

    Args:
        root: the container's root as the sidecar sees it ("/proc/PID/root").
        pid: a process of the container, for its mountinfo (None = no
            sensitive-mount checks, e.g. a plain directory in tests).
        policy: the config's switches and bounds.
    """

    def __init__(
        self, root: str, pid: int | None = None, policy: FsPolicy | None = None, proc: str = "/proc"
    ) -> None:
        self.root = root
        self.pid = pid
        self.policy = policy or FsPolicy()
        self.proc = proc
        self.names = Names(root)
        self._mounts: dict[int, Mount] | None = None
        self._root_name: str | None = None

    # -- mounts and policy --------------------------------------------------
    def mounts(self) -> list[Mount]:
        """The container's mounts (empty without a pid)."""
        return [] if self.pid is None else mounts_of(self.pid, self.proc)

    def _mount(self, fd: int) -> Mount | None:
        if self._mounts is None:
            self._mounts = {m.mount_id: m for m in self.mounts()}
        return self._mounts.get(mount_id_of(fd))

    def _sensitive(self, fd: int) -> str:
        m = self._mount(fd)
        return m.sensitive if m is not None else ""

    def _guard(self, fd: int, path: str) -> str:
        """The sensitive-mount kind of ``fd``; raises unless config allows reading it."""
        kind = self._sensitive(fd)
        if kind and not self.policy.allow_sensitive_paths:
            raise NotAllowed(
                f"{path} is on a {kind} mount; reading it is off (config allow_sensitive_paths)"
            )
        return kind

    def _denied(self, mode: int, sensitive: str) -> str:
        if stat.S_ISDIR(mode):
            return ""
        if not stat.S_ISREG(mode):
            return f"not a regular file ({file_type(mode).name.lower().replace('_', ' ')})"
        if sensitive and not self.policy.allow_sensitive_paths:
            return f"{sensitive} mount (config allow_sensitive_paths)"
        return ""

    def _info(
        self,
        st: os.stat_result,
        path: str,
        *,
        link: str = "",
        sensitive: str = "",
        denied: str | None = None,
    ) -> FileInfo:
        raw = os.fsencode(posixpath.basename(path) or "/")
        return FileInfo(
            name=raw.decode("utf-8", "replace"),
            raw_name=raw,
            path=path,
            type=file_type(st.st_mode),
            mode=stat.S_IMODE(st.st_mode),
            uid=st.st_uid,
            gid=st.st_gid,
            user=self.names.user(st.st_uid),
            group=self.names.group(st.st_gid),
            size=st.st_size,
            mtime=st.st_mtime,
            dev=st.st_dev,
            ino=st.st_ino,
            nlink=st.st_nlink,
            allocated=st.st_blocks * 512,
            symlink_target=link,
            denied_reason=self._denied(st.st_mode, sensitive) if denied is None else denied,
            sensitive=sensitive,
        )

    def resolved(self, fd: int, fallback: str) -> str:
        """The path of ``fd`` inside the container, symlinks resolved (else ``fallback``).

        The kernel names an fd from the root of its mount namespace; so does
        ``/proc/PID/root``. The fd's name minus the root's is the path the
        container itself would see.
        """
        if self._root_name is None:
            try:
                self._root_name = os.readlink(self.root)
            except OSError:  # a plain directory (tests), not a /proc/PID/root link
                self._root_name = os.path.realpath(self.root)
        try:
            name = os.readlink(f"/proc/self/fd/{fd}").removesuffix(" (deleted)")
        except OSError:
            return fallback
        base = self._root_name.rstrip("/")
        if not base:
            return name if name.startswith("/") else fallback
        if name == base:
            return "/"
        return name[len(base) :] if name.startswith(base + "/") else fallback

    def entry_info(self, st: os.stat_result, path: str) -> FileInfo:
        """FileInfo from an lstat made during a walk (no extra checks)."""
        return self._info(st, path)

    # -- stat and list ------------------------------------------------------
    def stat(self, path: str, follow_symlinks: bool = False) -> FileInfo:
        """lstat (or stat, resolving the last component inside the root)."""
        path = normalize(path)
        flags = os.O_PATH | (0 if follow_symlinks else os.O_NOFOLLOW)
        fd = open_in_root(self.root, path, flags, allow_proc_sys=self.policy.allow_proc_sys)
        try:
            st = os.fstat(fd)
            link = _readlink_fd(fd) if stat.S_ISLNK(st.st_mode) else ""
            where = self.resolved(fd, path) if follow_symlinks else path
            return self._info(st, where, link=link, sensitive=self._sensitive(fd))
        finally:
            os.close(fd)

    def list_dir(
        self, path: str, page_token: str = "", page_size: int = 0, hide_dotfiles: bool = False
    ) -> Listing:
        """One page of a directory, sorted by raw name bytes.

        The page token is the last name returned, so entries added or removed
        between pages do not shift the pages.
        """
        path = normalize(path)
        after = _after(page_token) if page_token else None
        size = min(page_size or DEFAULT_PAGE, MAX_PAGE)
        dfd = open_in_root(
            self.root, path, os.O_RDONLY | os.O_DIRECTORY, allow_proc_sys=self.policy.allow_proc_sys
        )
        try:
            dst = os.fstat(dfd)
            dsens = self._sensitive(dfd)
            names, truncated = self._scan(dfd, hide_dotfiles)
            total = len(names)
            if after is not None:
                names = [n for n in names if n > after]
            page = names[:size]
            entries = [e for e in (self._entry(dfd, dst, dsens, path, raw) for raw in page) if e]
            more = len(names) > size
            return Listing(
                dir=self._info(dst, path, sensitive=dsens),
                entries=tuple(entries),
                next_token=_pages_token(page[-1]) if more and page else "",
                total=total,
                truncated=truncated,
            )
        finally:
            os.close(dfd)

    def _scan(self, dfd: int, hide_dotfiles: bool) -> tuple[list[bytes], bool]:
        names: list[bytes] = []
        truncated = False
        with os.scandir(dfd) as it:
            for entry in it:
                if len(names) >= self.policy.max_dir_entries:
                    truncated = True
                    break
                if hide_dotfiles and entry.name.startswith("."):
                    continue
                names.append(os.fsencode(entry.name))
        names.sort()
        return names, truncated

    def _entry(
        self, dfd: int, dst: os.stat_result, dsens: str, dpath: str, raw: bytes
    ) -> FileInfo | None:
        name = os.fsdecode(raw)
        try:
            st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
            link = os.readlink(name, dir_fd=dfd) if stat.S_ISLNK(st.st_mode) else ""
        except FileNotFoundError:
            return None  # removed since the scan: not an error
        except PermissionError:
            # The name is listed but its metadata is not readable: say so, never drop it.
            path = posixpath.join(dpath, name)
            return FileInfo(
                name=raw.decode("utf-8", "replace"),
                raw_name=raw,
                path=path,
                type=FileType.UNSPECIFIED,
                mode=0,
                uid=0,
                gid=0,
                user="",
                group="",
                size=0,
                mtime=0.0,
                dev=0,
                ino=0,
                nlink=0,
                allocated=0,
                denied_reason="metadata unreadable: permission denied (" + DAC_HINT + ")",
            )
        sens, denied = dsens, None
        if st.st_dev != dst.st_dev and not stat.S_ISLNK(st.st_mode):
            sens, denied = self._crossing(dfd, name, st.st_mode, dsens)
        info = self._info(st, posixpath.join(dpath, name), link=link, sensitive=sens, denied=denied)
        # Keep the exact on-disk bytes: fsdecode's surrogates would not survive UTF-8.
        return replace(info, raw_name=raw, name=raw.decode("utf-8", "replace"))

    def _crossing(self, dfd: int, name: str, mode: int, dsens: str) -> tuple[str, str | None]:
        """A mount point in a listing: what is mounted there, and is it readable."""
        try:
            fd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dfd)
        except OSError:
            return dsens, None
        try:
            kind = PSEUDO_FS.get(fs_type(fd))
            if kind is not None and not self.policy.allow_proc_sys:
                return "", f"on the container's {kind} filesystem (config allow_proc_sys)"
            sens = self._sensitive(fd)
            return sens, self._denied(mode, sens)
        finally:
            os.close(fd)

    # -- reading ------------------------------------------------------------
    @contextmanager
    def open_file(self, path: str) -> Iterator[tuple[int, FileInfo]]:
        """A regular file's fd and info, with every check applied; closed on exit."""
        path = normalize(path)
        fd = open_regular_in_root(self.root, path, allow_proc_sys=self.policy.allow_proc_sys)
        try:
            sens = self._guard(fd, path)
            yield fd, self._info(os.fstat(fd), self.resolved(fd, path), sensitive=sens, denied="")
        finally:
            os.close(fd)

    def read(self, path: str, offset: int = 0, length: int = 0) -> ReadResult:
        """Bytes [offset, offset+length) of a regular file, length clamped to max_read_bytes."""
        if offset < 0 or length < 0:
            raise InvalidArgument("offset and length must not be negative")
        want = min(length or DEFAULT_READ, self.policy.max_read_bytes)
        with self.open_file(path) as (fd, info):
            data = pread_upto(fd, want, offset)
            size = os.fstat(fd).st_size
            return ReadResult(data, offset, size, offset + len(data) >= size, info)

    def hash(self, path: str) -> HashResult:
        """sha256 of the file's bytes up to its size when the hash began."""
        with self.open_file(path) as (fd, info):
            h = hashlib.sha256()
            n = hash_range(fd, h, 0, info.size)
            return HashResult(h.hexdigest(), n, info)

    @contextmanager
    def download(self, path: str, offset: int = 0, chunk_size: int = 0) -> Iterator[Download]:
        """A download of ``path`` from ``offset`` (see :class:`Download`)."""
        chunk = max(MIN_CHUNK, min(chunk_size or CHUNK, MAX_CHUNK))
        with self.open_file(path) as (fd, info):
            if offset < 0 or offset > info.size:
                raise InvalidArgument(
                    f"resume offset {offset} is beyond the end of {info.path} ({info.size} bytes)"
                )
            dl = Download(fd, info, offset, chunk)
            try:
                yield dl
            finally:
                dl.close()
