"""A container's mounts (mountinfo), and which of them hold secrets.

Kubernetes mounts the service-account token (a projected volume) at
``/var/run/secrets/kubernetes.io/serviceaccount`` and Secret volumes as
read-only tmpfs at any path. Reads under those are denied unless config
``allow_sensitive_paths`` says otherwise. Which mount an open fd lives on is
told by its ``mnt_id`` (``/proc/self/fdinfo/N``): mount ids are unique across
namespaces, so the fd's id can be looked up in the container's own mountinfo
whatever symlinks led there.
"""

from __future__ import annotations

import re

from agent._common import read_bytes, text
from agent.errors import AccessDenied, NotFound
from agent.results.fs import Mount

MAX_MOUNTINFO = 4 << 20
SA_DIRS = (
    "/var/run/secrets/kubernetes.io/serviceaccount",
    "/run/secrets/kubernetes.io/serviceaccount",
)
SECRET_DIRS = ("/var/run/secrets", "/run/secrets")
# Read-only tmpfs mounts that are normal in a container and hold no secrets.
_ORDINARY_TMPFS = ("/dev", "/sys", "/proc")
_OCTAL = re.compile(rb"\\([0-7]{3})")


def _unescape(raw: bytes) -> str:
    """mountinfo escapes space, tab, newline and backslash as \\ooo."""
    return text(_OCTAL.sub(lambda m: bytes([int(m.group(1), 8)]), raw))


def _under(path: str, top: str) -> bool:
    return path == top or path.startswith(top.rstrip("/") + "/")


def classify(mount_point: str, root: str, fs_type: str, source: str, options: str) -> str:
    """Why reads under this mount are sensitive ("" = they are not).

    Args:
        mount_point: where it is mounted in the container.
        root: the mounted subtree of its filesystem (kubelet's volume path
            shows here for bind mounts out of a bigger filesystem).
        fs_type, source, options: as in mountinfo.
    """
    if any(_under(mount_point, d) for d in SA_DIRS):
        return "service-account token"
    where = root + " " + source
    if "kubernetes.io~projected" in where:
        return "projected volume (may hold a service-account token)"
    if "kubernetes.io~secret" in where:
        return "secret"
    if any(_under(mount_point, d) for d in SECRET_DIRS):
        return "secret"
    if (
        fs_type == "tmpfs"
        and "ro" in options.split(",")
        and not any(_under(mount_point, d) for d in _ORDINARY_TMPFS)
    ):
        return "read-only tmpfs (how Kubernetes mounts a Secret)"
    return ""


def parse_mountinfo(raw: bytes) -> list[Mount]:
    """Parse /proc/PID/mountinfo (proc(5)); malformed lines are skipped."""
    out: list[Mount] = []
    for line in raw.splitlines():
        parts = line.split(b" ")
        try:
            sep = parts.index(b"-", 6)
            mount_id, parent_id = int(parts[0]), int(parts[1])
            root = _unescape(parts[3])
            mount_point = _unescape(parts[4])
            options = text(parts[5])
            fs_type = text(parts[sep + 1])
            source = _unescape(parts[sep + 2])
            super_options = text(parts[sep + 3]) if len(parts) > sep + 3 else ""
        except (ValueError, IndexError):
            continue
        out.append(
            Mount(
                mount_id=mount_id,
                parent_id=parent_id,
                mount_point=mount_point,
                root=root,
                fs_type=fs_type,
                source=source,
                options=options,
                super_options=super_options,
                sensitive=classify(mount_point, root, fs_type, source, options),
            )
        )
    return out


def mounts_of(pid: int, proc: str = "/proc") -> list[Mount]:
    """The mounts of the container whose process is ``pid``.

    Raises:
        NotFound: the process exited.
        AccessDenied: no ptrace-read access to it.
    """
    try:
        return parse_mountinfo(read_bytes(f"{proc}/{pid}/mountinfo", MAX_MOUNTINFO))
    except (FileNotFoundError, ProcessLookupError):
        raise NotFound(f"process {pid} exited; its mounts are gone") from None
    except PermissionError:
        raise AccessDenied(
            f"cannot read the mounts of pid {pid}: needs the same UID or CAP_SYS_PTRACE"
        ) from None


def mount_id_of(fd: int) -> int:
    """The mount id of the filesystem object behind ``fd`` (any fd, O_PATH too)."""
    for line in read_bytes(f"/proc/self/fdinfo/{fd}", 4096).splitlines():
        if line.startswith(b"mnt_id:"):
            return int(line.split()[1])
    return -1
