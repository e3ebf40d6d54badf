"""Open a path *inside* a container's root, never outside it.

Two resolvers, one contract:

* ``openat2``: the kernel resolves the path with ``RESOLVE_IN_ROOT``
  (``..`` and absolute symlinks are clamped at the root) and
  ``RESOLVE_NO_MAGICLINKS`` (``/proc/PID/root``-style links are refused).
* ``walk``: for kernels without openat2 (< 5.6, or seccomp-blocked), a
  component-by-component walk with ``O_PATH|O_NOFOLLOW`` that reads each
  symlink as text and resolves it again inside the root. ``..`` is handled
  from our own stack of directory fds, so it can never climb out.

Both first produce an ``O_PATH`` fd (opening one has no side effect, even on
a device or FIFO), check what it is, and only then reopen the *same inode*
through ``/proc/self/fd/N`` with the real flags: a rename race between the
check and the open cannot swap the object. Callers use only the fd
afterwards (fstat, read, scandir).

Nothing here ever joins strings and opens the result.
"""

from __future__ import annotations

import ctypes
import errno
import os
import re
import stat
from collections.abc import Iterator
from contextlib import contextmanager

from agent._access import SYS_OPENAT2
from agent.errors import AccessDenied, InvalidArgument, NotAllowed, NotFound, Unsupported

RESOLVE_NO_XDEV = 0x01
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08
RESOLVE_IN_ROOT = 0x10

#: Symlinks followed per resolution before giving up (the kernel's MAXSYMLINKS).
MAX_SYMLINKS = 40
MAX_PATH = 4096
#: openat2 returns EAGAIN when a rename or mount raced a ".." step; retry a few times.
EAGAIN_RETRIES = 8

# statfs f_type of pseudo filesystems that are "/proc and /sys" for our purpose
# (linux/magic.h). Reading them can hang, leak host data, or trigger actions.
PROC_SUPER_MAGIC = 0x9FA0
PSEUDO_FS = {
    PROC_SUPER_MAGIC: "proc",
    0x62656572: "sysfs",
    0x27E0EB: "cgroup",
    0x63677270: "cgroup2",
    0x64626720: "debugfs",
    0x74726163: "tracefs",
    0x73636673: "securityfs",
    0xCAFE4A11: "bpf",
    0x62656570: "configfs",
    0xDE5E81E4: "efivarfs",
    0x6165676C: "pstore",
}

_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND | os.O_EXCL
RESOLVERS = ("openat2", "walk")
PTRACE_HINT = "needs the same UID or CAP_SYS_PTRACE"
DAC_HINT = "run the sidecar as the app's UID, or add CAP_DAC_READ_SEARCH"

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long
_libc.fstatfs.argtypes = (ctypes.c_int, ctypes.c_void_p)
_libc.readlinkat.argtypes = (ctypes.c_int, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_size_t)
_libc.readlinkat.restype = ctypes.c_ssize_t


class _OpenHow(ctypes.Structure):
    _fields_ = (
        ("flags", ctypes.c_uint64),
        ("mode", ctypes.c_uint64),
        ("resolve", ctypes.c_uint64),
    )


#: The resolver in use; None = probe on first use. A dict, so tests can swap it.
_state: dict[str, str | None] = {"resolver": None}


def _probe() -> str:
    """openat2 when the kernel has it and lets us use it, else walk."""
    how = _OpenHow(os.O_PATH | os.O_CLOEXEC, 0, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)
    fd = _libc.syscall(SYS_OPENAT2, -100, b"/", ctypes.byref(how), ctypes.sizeof(how))
    if fd >= 0:
        os.close(fd)
        return "openat2"
    return "walk"


def resolver() -> str:
    """The resolver in use: "openat2" or "walk"."""
    current = _state["resolver"]
    if current is None:
        current = _state["resolver"] = _probe()
    return current


def use_resolver(name: str | None) -> None:
    """Force a resolver ("openat2", "walk"), or None to probe again (for tests).

    Raises:
        Unsupported: openat2 was asked for on a kernel without it (fail closed).
    """
    if name is None:
        _state["resolver"] = None
        return
    if name not in RESOLVERS:
        raise InvalidArgument(f"unknown resolver {name!r}; known: {', '.join(RESOLVERS)}")
    if name == "openat2" and _probe() != "openat2":
        raise Unsupported("openat2 is not available on this kernel")
    _state["resolver"] = name


@contextmanager
def resolver_forced(name: str) -> Iterator[None]:
    """Use ``name`` for the duration of a ``with`` block (tests)."""
    before = _state["resolver"]
    use_resolver(name)
    try:
        yield
    finally:
        _state["resolver"] = before


def fs_type(fd: int) -> int:
    """statfs f_type of the filesystem holding ``fd`` (works on O_PATH fds)."""
    buf = ctypes.create_string_buffer(256)  # struct statfs is 120 bytes on 64-bit
    if _libc.fstatfs(fd, buf) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
    # f_type is the first member (a long on every 64-bit ABI we run on).
    return ctypes.c_long.from_buffer(buf).value & 0xFFFFFFFF


def check_path(path: str) -> str:
    """Validate a container path; returns it unchanged.

    Raises:
        InvalidArgument: empty, relative, too long, or holding a NUL byte.
    """
    if not path:
        raise InvalidArgument("path is empty; give an absolute path inside the container")
    if "\x00" in path:
        raise InvalidArgument("path contains a NUL byte")
    if not path.startswith("/"):
        raise InvalidArgument(
            f"path {path!r} is relative; give an absolute path inside the container"
        )
    if len(os.fsencode(path)) > MAX_PATH:
        raise InvalidArgument(f"path is longer than {MAX_PATH} bytes")
    return path


def _error(e: OSError, path: str) -> Exception:
    """Translate an OSError from resolution into an agent error."""
    code = e.errno
    if code == errno.ENOENT:
        return NotFound(f"{path}: no such file or directory in the container")
    if code == errno.ENOTDIR:
        return NotFound(f"{path}: a component of the path is not a directory")
    if code in (errno.EACCES, errno.EPERM):
        return AccessDenied(f"{path}: permission denied ({DAC_HINT})")
    if code == errno.ELOOP:
        return InvalidArgument(
            f"{path}: too many symlinks, a symlink loop, or a /proc magic link "
            "(refused: it could leave the container's root)"
        )
    if code == errno.EXDEV:
        return AccessDenied(f"{path}: resolution tried to leave the container's root")
    if code == errno.ENAMETOOLONG:
        return InvalidArgument(f"{path}: name too long")
    if code == errno.EAGAIN:
        return AccessDenied(f"{path}: the directory tree kept changing during resolution; retry")
    return AccessDenied(f"{path}: cannot open: {os.strerror(code or 0)}")


def _open_root(root: str) -> int:
    """O_PATH fd of the container's root (a trusted path such as /proc/PID/root)."""
    try:
        return os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise NotFound(f"the container's root {root} is gone (its process exited)") from None
    except PermissionError:
        raise AccessDenied(f"cannot open the container's root {root}: {PTRACE_HINT}") from None
    except NotADirectoryError:
        raise InvalidArgument(f"the container's root {root} is not a directory") from None


def _openat2(root_fd: int, path: str, flags: int) -> int:
    how = _OpenHow(flags | os.O_CLOEXEC, 0, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)
    raw = os.fsencode(path)
    for _ in range(EAGAIN_RETRIES):
        fd = _libc.syscall(SYS_OPENAT2, root_fd, raw, ctypes.byref(how), ctypes.sizeof(how))
        if fd >= 0:
            return int(fd)
        e = ctypes.get_errno()
        if e not in (errno.EAGAIN, errno.EINTR):
            raise OSError(e, os.strerror(e), path)
    raise OSError(errno.EAGAIN, os.strerror(errno.EAGAIN), path)


def _components(path: str) -> list[str]:
    return [c for c in path.split("/") if c not in ("", ".")]


def _walk(root_fd: int, path: str, nofollow_last: bool) -> int:
    """Resolve ``path`` under ``root_fd`` one component at a time; an O_PATH fd.

    Symlinks are read as text and their targets resolved again from the root
    (absolute) or the current directory (relative), so nothing is ever
    followed by the kernel. ``..`` pops our own stack: at the root it stays
    at the root, exactly like RESOLVE_IN_ROOT.
    """
    todo = _components(path)
    todo.reverse()  # a stack: next component last
    stack: list[int] = [os.dup(root_fd)]
    links = 0
    try:
        while todo:
            name = todo.pop()
            if name == "..":
                if len(stack) > 1:
                    os.close(stack.pop())
                continue
            last = not todo
            fd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=stack[-1])
            st = os.fstat(fd)
            if stat.S_ISLNK(st.st_mode) and not (last and nofollow_last):
                links += 1
                if links > MAX_SYMLINKS:
                    os.close(fd)
                    raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), path)
                # readlinkat on the O_PATH fd itself (empty name): the link we checked.
                target = _readlink_fd(fd)
                magic = _is_magic(fd, target)
                os.close(fd)
                if magic:
                    # What RESOLVE_NO_MAGICLINKS refuses: /proc/PID/root, cwd, exe, fd/N.
                    raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), path)
                if target.startswith("/"):
                    while len(stack) > 1:
                        os.close(stack.pop())
                todo.extend(reversed(_components(target)))
                continue
            if last:
                return fd
            if not stat.S_ISDIR(st.st_mode):
                os.close(fd)
                raise OSError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), path)
            stack.append(fd)
        # The path named a directory on the stack (the root, or after "..").
        return os.dup(stack[-1])
    finally:
        for d in stack:
            os.close(d)


_PROC_PLAIN_LINK = re.compile(r"[0-9]+(/task/[0-9]+)?|self/[a-z_]+")


def _is_magic(fd: int, target: str) -> bool:
    """A procfs link other than the plain ones (self, thread-self, mounts -> self/mounts)."""
    return fs_type(fd) == PROC_SUPER_MAGIC and not _PROC_PLAIN_LINK.fullmatch(target)


def _readlink_fd(fd: int) -> str:
    """Text of the symlink an O_PATH|O_NOFOLLOW fd refers to (readlinkat(fd, ""))."""
    buf = ctypes.create_string_buffer(MAX_PATH + 1)
    n = _libc.readlinkat(fd, b"", buf, MAX_PATH)
    if n < 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
    return os.fsdecode(buf.raw[:n])


def _resolve_opath(root: str, path: str, nofollow: bool) -> int:
    """An O_PATH fd for ``path`` inside ``root`` (the object is not opened)."""
    check_path(path)
    root_fd = _open_root(root)
    try:
        if resolver() == "openat2":
            flags = os.O_PATH | (os.O_NOFOLLOW if nofollow else 0)
            return _openat2(root_fd, path, flags)
        fd = _walk(root_fd, path, nofollow)
        if path.endswith(("/", "/.")) and not stat.S_ISDIR(os.fstat(fd).st_mode):
            os.close(fd)  # "file/" names a directory, as the kernel (and openat2) insist
            raise OSError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), path)
        return fd
    except OSError as e:
        raise _error(e, path) from None
    finally:
        os.close(root_fd)


def _check_pseudo(fd: int, path: str, allow_proc_sys: bool) -> None:
    if allow_proc_sys:
        return
    kind = PSEUDO_FS.get(fs_type(fd))
    if kind is not None:
        raise NotAllowed(
            f"{path} is on the container's {kind} filesystem; reads under /proc and /sys "
            "are off (config allow_proc_sys)"
        )


def _type_name(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISLNK(mode):
        return "a symlink"
    return "not a regular file"


def _reopen(pfd: int, flags: int, path: str) -> int:
    """Open the inode behind an O_PATH fd with real flags (same inode, no re-resolution)."""
    try:
        return os.open(f"/proc/self/fd/{pfd}", flags | os.O_CLOEXEC | os.O_NOCTTY)
    except OSError as e:
        raise _error(e, path) from None


def open_in_root(
    root: str, path: str, flags: int = os.O_RDONLY, *, allow_proc_sys: bool = False
) -> int:
    """An fd for ``path`` resolved inside ``root`` (e.g. "/proc/123/root").

    With ``os.O_PATH`` in ``flags`` the object is only located (add
    ``os.O_NOFOLLOW`` to get a final symlink itself, for lstat). Otherwise
    regular files and directories are opened with ``flags``; FIFOs, sockets
    and devices are refused without being opened (no hang, no side effect).

    Args:
        root: the container's root as the sidecar sees it.
        path: absolute path inside the container.
        flags: ``os.O_RDONLY`` (optionally ``O_DIRECTORY``, ``O_NOFOLLOW``) or ``O_PATH``.
        allow_proc_sys: permit objects on the container's /proc, /sys and friends.

    Returns:
        An fd the caller owns (close it).

    Raises:
        NotFound, AccessDenied, NotAllowed, InvalidArgument.
    """
    if flags & _WRITE_FLAGS:
        raise InvalidArgument("borescope opens the container's files read-only")
    nofollow = bool(flags & os.O_NOFOLLOW)
    pfd = _resolve_opath(root, path, nofollow)
    try:
        _check_pseudo(pfd, path, allow_proc_sys)
        if flags & os.O_PATH:
            fd, pfd = pfd, -1
            return fd
        mode = os.fstat(pfd).st_mode
        if flags & os.O_DIRECTORY and not stat.S_ISDIR(mode):
            raise InvalidArgument(f"{path} is {_type_name(mode)}, not a directory")
        if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
            raise InvalidArgument(f"{path} is {_type_name(mode)}; only regular files are read")
        return _reopen(pfd, flags & ~os.O_NOFOLLOW, path)
    finally:
        if pfd >= 0:
            os.close(pfd)


def open_regular_in_root(
    root: str, path: str, flags: int = os.O_RDONLY, *, allow_proc_sys: bool = False
) -> int:
    """Like :func:`open_in_root`, but refuses anything that is not a regular file.

    Raises:
        InvalidArgument: a directory, FIFO, socket or device (named in the message).
        NotFound, AccessDenied, NotAllowed: as for open_in_root.
    """
    if flags & (os.O_PATH | os.O_DIRECTORY):
        raise InvalidArgument(
            "open_regular_in_root opens file contents; O_PATH/O_DIRECTORY not allowed"
        )
    if flags & _WRITE_FLAGS:
        raise InvalidArgument("borescope opens the container's files read-only")
    pfd = _resolve_opath(root, path, bool(flags & os.O_NOFOLLOW))
    try:
        _check_pseudo(pfd, path, allow_proc_sys)
        mode = os.fstat(pfd).st_mode
        if not stat.S_ISREG(mode):
            raise InvalidArgument(f"{path} is {_type_name(mode)}; only regular files are read")
        return _reopen(pfd, flags & ~os.O_NOFOLLOW, path)
    finally:
        os.close(pfd)
