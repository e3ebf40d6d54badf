"""Build the demo app's "distroless" root: an interpreter, its libraries, no shell.

The root holds only what the app needs to run: the Python interpreter (named
``demo-app``, so the process reads like an app binary), the shared libraries
``ldd`` says it and the stdlib's extension modules need, the app's code, a
minimal ``/etc`` and ``/var/log/demo``. The stdlib itself is not copied: it is
bind-mounted read-only by ``appinit`` inside the app's own mount namespace, so
nothing is ever mounted in the host's namespace (a crash cannot leave a bind
mount of the host's stdlib under a temp dir that something later deletes).

There is no ``/bin``, no ``/bin/sh`` and no package manager: the stdlib's
``site-packages`` and ``ensurepip`` are hidden under empty mounts.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

APP_UID = 10001
APP_GID = 10001
APP_USER = "app"
APP_BINARY = "/usr/local/bin/demo-app"
APP_CODE = "/app/main.py"
LOG_DIR = "/var/log/demo"
PY_VERSION = f"python{sys.version_info.major}.{sys.version_info.minor}"
STDLIB_IN_ROOT = f"/usr/local/lib/{PY_VERSION}"
#: Directories of the stdlib hidden under empty mounts: they hold pip.
HIDDEN_STDLIB_DIRS = ("site-packages", "ensurepip")
#: Extension modules whose libraries are not worth copying (GUI toolkits).
SKIPPED_EXTENSIONS = ("_tkinter",)
_LDD_LINE = re.compile(r"^\s*(?:\S+\s+=>\s+)?(/\S+)\s+\(0x[0-9a-f]+\)\s*$")


class RootfsError(RuntimeError):
    """The root cannot be built (a tool or file is missing); the message says which."""


@dataclass(frozen=True)
class Rootfs:
    """A built app root.

    Attributes:
        path: host path of the root directory.
        stdlib: host path of the stdlib to bind-mount at ``STDLIB_IN_ROOT``.
        empty: host path of an empty directory used to hide stdlib dirs.
    """

    path: str
    stdlib: str
    empty: str

    @property
    def log_dir(self) -> str:
        """Host path of the app's log directory."""
        return self.path + LOG_DIR


def base_interpreter() -> str:
    """The real interpreter binary behind ``sys.executable`` (a venv's is a symlink)."""
    base = getattr(sys, "_base_executable", "") or sys.executable
    return os.path.realpath(base)


def stdlib_dir() -> str:
    """The base installation's stdlib directory (not a venv's)."""
    return sysconfig.get_paths(vars={"installed_base": sys.base_prefix, "base": sys.base_prefix})[
        "stdlib"
    ]


def shared_libraries(binaries: list[str]) -> set[str]:
    """Every shared library (and the loader) the binaries need, per ``ldd``.

    Raises:
        RootfsError: ``ldd`` is missing or a library is not found.
    """
    libs: set[str] = set()
    for start in range(0, len(binaries), 64):
        chunk = binaries[start : start + 64]
        try:
            out = subprocess.run(
                ["ldd", *chunk], capture_output=True, text=True, check=False, timeout=30
            ).stdout
        except FileNotFoundError:
            raise RootfsError("ldd not found: install libc-bin to build the sandbox root") from None
        for line in out.splitlines():
            if "not found" in line:
                raise RootfsError(f"a library the interpreter needs is missing: {line.strip()}")
            m = _LDD_LINE.match(line)
            if m:
                libs.add(m.group(1))
    return libs


def _extensions(stdlib: str) -> list[str]:
    dyn = Path(stdlib) / "lib-dynload"
    if not dyn.is_dir():
        return []
    return sorted(
        str(p)
        for p in dyn.glob("*.so")
        if not any(p.name.startswith(s + ".") for s in SKIPPED_EXTENSIONS)
    )


def _place(src: str, dst: Path) -> None:
    """Hard-link ``src`` to ``dst`` (instant, same inode), copying across filesystems."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    src = os.path.realpath(src)  # link(2) would link a symlink itself, not its target
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _write(path: Path, text: str, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)


def _etc(root: Path) -> None:
    _write(
        root / "etc/passwd",
        f"root:x:0:0:root:/root:/sbin/nologin\n"
        f"{APP_USER}:x:{APP_UID}:{APP_GID}:demo app:/nonexistent:/sbin/nologin\n"
        "nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n",
    )
    _write(root / "etc/group", f"root:x:0:\n{APP_USER}:x:{APP_GID}:\nnogroup:x:65534:\n")
    _write(
        root / "etc/hosts",
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
        "127.0.1.1\tdemo-app.sandbox.svc.cluster.local demo-app\n",
    )
    _write(
        root / "etc/resolv.conf",
        "# sandbox pod: no DNS server is reachable from its network namespace\n"
        "search sandbox.svc.cluster.local svc.cluster.local cluster.local\n"
        "nameserver 10.96.0.10\noptions ndots:5\n",
    )
    _write(root / "etc/nsswitch.conf", "passwd: files\ngroup: files\nhosts: files dns\n")
    _write(root / "etc/os-release", 'NAME="borescope sandbox"\nID=distroless\n')


def build(root: str, app_source: str) -> Rootfs:
    """Create the app root under ``root`` (an empty or absent directory).

    Args:
        root: host path for the root (created).
        app_source: host path of the demo app's code, installed as ``APP_CODE``.

    Returns:
        The built root; the stdlib is mounted later, by ``appinit``.

    Raises:
        RootfsError: a tool or library is missing.
    """
    r = Path(root)
    r.mkdir(parents=True, exist_ok=True)
    interp = base_interpreter()
    stdlib = stdlib_dir()
    libs = shared_libraries([interp, *_extensions(stdlib)])
    _place(interp, r / APP_BINARY.lstrip("/"))
    for lib in libs:
        if os.path.basename(lib).startswith("ld-linux") or lib.startswith("/lib64/"):
            # The loader must sit at the binary's PT_INTERP path, verbatim.
            _place(lib, r / lib.lstrip("/"))
        else:
            # /usr/lib is always on the loader's default search path; the
            # interpreter's RUNPATH (e.g. pyenv's prefix) does not exist here.
            _place(lib, r / "usr/lib" / os.path.basename(lib))
    (r / "lib").symlink_to("usr/lib")  # merged /usr, like current distroless bases
    (r / STDLIB_IN_ROOT.lstrip("/")).mkdir(parents=True)
    # Copied, not linked: the app's code must not share an inode with the repo's.
    (r / "app").mkdir()
    shutil.copyfile(app_source, r / APP_CODE.lstrip("/"))
    (r / APP_CODE.lstrip("/")).chmod(0o644)
    _etc(r)
    for d in ("tmp", "proc", "dev", "root"):
        (r / d).mkdir(exist_ok=True)
    (r / "tmp").chmod(0o1777)
    (r / "root").chmod(0o700)
    for dev in ("null", "zero", "urandom", "random"):
        (r / "dev" / dev).touch()  # mount points for bind-mounted devices
    logs = r / LOG_DIR.lstrip("/")
    logs.mkdir(parents=True)
    os.chown(logs, APP_UID, APP_GID)
    empty = r.parent / "empty"
    empty.mkdir(exist_ok=True)
    empty.chmod(0o555)
    return Rootfs(path=str(r), stdlib=stdlib, empty=str(empty))
