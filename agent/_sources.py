"""Discover a container's log sources.

* files its processes hold open for writing (``/proc/PID/fd`` + the ``flags``
  line of ``/proc/PID/fdinfo/N``);
* regular files under ``/var/log`` and ``*.log`` in each process's working
  directory, inside the container's root;
* the CRI-format stdout/stderr capture files named in config (``stdio_logs``,
  paths as the sidecar sees them);
* files named in config (``log_sources``, paths inside the container);
* the flight recorder.

Paths are always re-checked through the confined resolver: a path read from a
magic link is only a hint, so it is accepted only when the file it names
inside the root is the very inode the process has open.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable

from agent._fs_resolve import open_in_root, open_regular_in_root
from agent._pod import Pod
from agent.errors import AccessDenied, InvalidArgument, NotAllowed, NotFound
from agent.results.logs import Source, SourceFormat, SourceKind, SourceList
from agent.results.pod import Container, Unavailable

RECORDER_SOURCE_ID = "recorder"
LOG_DIRS = ("/var/log",)
MAX_DIR_FILES = 256  # bound the walk of a log directory
MAX_DIR_DEPTH = 3
MAX_FDS_PER_PROCESS = 4096
_WRITE_MODES = os.O_WRONLY | os.O_RDWR
_BINARY_NAMES = frozenset({"lastlog", "wtmp", "btmp", "utmp", "faillog"})  # login records, not text
_SKIP_SUFFIXES = (".gz", ".bz2", ".xz", ".zst", ".zip", ".lz4", ".journal", ".db", ".pid", ".lock")


def source_id(container_name: str, kind: SourceKind, path: str) -> str:
    """A stable id: the container's name and the path (not the pid or mount id, which change)."""
    if kind is SourceKind.STDIO:
        return f"stdio:{path}"
    return f"{container_name}:{path}"


def _strip_root(link: str, host_root: str) -> str | None:
    """The path inside the container for a magic-link text, or None when it is not a path."""
    if not link.startswith("/") or link.endswith(" (deleted)"):
        return None
    if host_root not in ("", "/") and link.startswith(host_root + "/"):
        return link[len(host_root) :]
    return link


def _identity_in_root(root: str, path: str) -> os.stat_result | None:
    try:
        fd = open_regular_in_root(root, path)
    except (NotFound, AccessDenied, InvalidArgument, NotAllowed):
        return None
    try:
        return os.fstat(fd)
    finally:
        os.close(fd)


def _open_for_writing(
    proc: str, c: Container, root: str, unavailable: list[Unavailable]
) -> dict[str, tuple[set[int], os.stat_result]]:
    """Path inside the root -> (writer pids, stat) for regular files opened for writing."""
    found: dict[str, tuple[set[int], os.stat_result]] = {}
    try:
        host_root = os.readlink(f"{proc}/{c.root.pid}/root")
    except OSError:
        host_root = ""
    for pid in c.pids:
        try:
            fds = os.listdir(f"{proc}/{pid}/fd")[:MAX_FDS_PER_PROCESS]
        except PermissionError:
            unavailable.append(
                Unavailable(f"open files of pid {pid}", "needs the same UID or CAP_SYS_PTRACE")
            )
            continue
        except (FileNotFoundError, ProcessLookupError):
            continue  # exited meanwhile
        for n in fds:
            try:
                link = os.readlink(f"{proc}/{pid}/fd/{n}")
                if not link.startswith("/"):
                    continue  # socket:[..], pipe:[..], anon_inode:..
                with open(f"{proc}/{pid}/fdinfo/{n}", "rb") as f:
                    info = f.read(512)
                st = os.stat(f"{proc}/{pid}/fd/{n}")
            except (FileNotFoundError, ProcessLookupError, PermissionError):
                continue  # closed or exited between listdir and read
            if not stat.S_ISREG(st.st_mode) or not _writable(info):
                continue
            path = _strip_root(link, host_root)
            if path is None or path.startswith(("/proc/", "/sys/", "/dev/")):
                continue
            if path.endswith(_SKIP_SUFFIXES):
                continue
            if path in found:
                found[path][0].add(pid)
                continue
            inside = _identity_in_root(root, path)
            if inside is None or (inside.st_dev, inside.st_ino) != (st.st_dev, st.st_ino):
                continue  # not reachable under that name inside the root (deleted, or elsewhere)
            found[path] = ({pid}, inside)
    return found


def _writable(fdinfo: bytes) -> bool:
    for line in fdinfo.splitlines():
        if line.startswith(b"flags:"):
            return bool(int(line.split()[1], 8) & _WRITE_MODES)
    return False


def _walk_logs(root: str, top: str, depth: int, out: dict[str, os.stat_result]) -> None:
    """Regular files under ``top`` inside the root (bounded depth and count)."""
    try:
        dfd = open_in_root(root, top, os.O_RDONLY | os.O_DIRECTORY)
    except (NotFound, AccessDenied, InvalidArgument, NotAllowed):
        return
    try:
        with os.scandir(dfd) as it:
            entries = sorted(it, key=lambda e: e.name)
        for e in entries:
            if len(out) >= MAX_DIR_FILES:
                return
            path = f"{top.rstrip('/')}/{e.name}"
            try:
                st = os.stat(e.name, dir_fd=dfd, follow_symlinks=False)
            except OSError:
                continue
            if stat.S_ISDIR(st.st_mode) and depth > 0:
                _walk_logs(root, path, depth - 1, out)
            elif (
                stat.S_ISREG(st.st_mode)
                and not e.name.endswith(_SKIP_SUFFIXES)
                and e.name not in _BINARY_NAMES
            ):
                out[path] = st
    finally:
        os.close(dfd)


def _cwd_logs(proc: str, c: Container, root: str, out: dict[str, os.stat_result]) -> None:
    try:
        host_root = os.readlink(f"{proc}/{c.root.pid}/root")
    except OSError:
        host_root = ""
    cwds: set[str] = set()
    for pid in c.pids:
        try:
            cwd = _strip_root(os.readlink(f"{proc}/{pid}/cwd"), host_root)
        except OSError:
            continue
        if cwd and cwd != "/":
            cwds.add(cwd)
    for cwd in sorted(cwds):
        try:
            dfd = open_in_root(root, cwd, os.O_RDONLY | os.O_DIRECTORY)
        except (NotFound, AccessDenied, InvalidArgument, NotAllowed):
            continue
        try:
            for name in sorted(os.listdir(dfd))[:MAX_DIR_FILES]:
                if not name.endswith(".log"):
                    continue
                try:
                    st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
                except OSError:
                    continue
                if stat.S_ISREG(st.st_mode):
                    out[f"{cwd.rstrip('/')}/{name}"] = st
        finally:
            os.close(dfd)


def pick_container(pod: Pod, container_id: str = "") -> Container:
    """The container a request names; "" = the primary app (the local tree in local mode).

    Raises:
        NotFound: no such container.
    """
    local = getattr(pod, "local_root", None)
    if not container_id and local:
        # Local mode: the app is the given process tree, whatever else the machine runs.
        try:
            return pod.container(f"local-{local}")
        except NotFound:
            pass  # the tree exited; fall back to the pod's own choice (and its error)
    return pod.container(container_id)


def discover(
    pod: Pod,
    container_id: str = "",
    *,
    stdio_logs: Iterable[str] = (),
    log_sources: Iterable[str] = (),
    recorder: bool = False,
) -> SourceList:
    """Every log source of a container (default: the primary app container).

    Raises:
        NotFound: no such container.
    """
    c = pick_container(pod, container_id)
    root = c.root_path
    unavailable: list[Unavailable] = []
    sources: dict[str, Source] = {}

    def add(
        kind: SourceKind,
        path: str,
        st: os.stat_result,
        *,
        fmt: SourceFormat,
        pids: Iterable[int] = (),
        desc: str = "",
        src_root: str = root,
    ) -> None:
        sid = source_id(c.name, kind, path)
        if sid in sources:
            return
        sources[sid] = Source(
            id=sid,
            kind=kind,
            path=path,
            root=src_root,
            container_id=c.id,
            pids=tuple(sorted(pids)),
            size=st.st_size,
            mtime=st.st_mtime,
            format=fmt,
            description=desc,
        )

    for path in log_sources:
        st = _identity_in_root(root, path)
        if st is None:
            unavailable.append(
                Unavailable(
                    f"log source {path}",
                    "not a readable regular file in the container (config log_sources)",
                )
            )
            continue
        add(SourceKind.CONFIG, path, st, fmt=SourceFormat.AUTO, desc="named in config log_sources")
    for path in stdio_logs:
        st = _identity_in_root("/", path)
        if st is None:
            unavailable.append(
                Unavailable(f"stdio log {path}", "not a readable regular file (config stdio_logs)")
            )
            continue
        add(
            SourceKind.STDIO,
            path,
            st,
            fmt=SourceFormat.CRI,
            desc="container stdout/stderr (CRI format)",
            src_root="/",
        )
    if not c.root_accessible:
        unavailable.append(
            Unavailable(
                "container files", f"cannot open {root}: needs the same UID or CAP_SYS_PTRACE"
            )
        )
    else:
        for path, (pids, st) in sorted(_open_for_writing(pod.proc, c, root, unavailable).items()):
            add(
                SourceKind.OPEN_FILE,
                path,
                st,
                fmt=SourceFormat.AUTO,
                pids=pids,
                desc="held open for writing by pid " + ",".join(map(str, sorted(pids))),
            )
        found: dict[str, os.stat_result] = {}
        for top in LOG_DIRS:
            _walk_logs(root, top, MAX_DIR_DEPTH, found)
        _cwd_logs(pod.proc, c, root, found)
        for path, st in sorted(found.items()):
            add(
                SourceKind.LOG_DIR, path, st, fmt=SourceFormat.AUTO, desc="found in a log directory"
            )
    out = list(sources.values())
    if recorder:
        out.append(
            Source(
                id=RECORDER_SOURCE_ID,
                kind=SourceKind.RECORDER,
                path="",
                root="",
                container_id="",
                format=SourceFormat.AUTO,
                description="borescope's flight recorder events",
            )
        )
    return SourceList(tuple(out), tuple(unavailable))
