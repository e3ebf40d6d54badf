"""Build the real-container test images with podman/buildah, cached by input hash.

Three images, each tagged with a hash of everything that goes into it, so a
re-run whose inputs did not change only asks podman whether the tag exists:

1. ``localhost/borescope-base:<hash>``: Debian bookworm made by ``debootstrap
   --variant=minbase --include=python3`` and imported into podman (no registry
   is reachable on these machines, so a registry base image cannot be pulled).
2. ``localhost/borescope-sidecar:<hash>``: ``sidecar/Containerfile`` built by
   ``buildah bud`` with that base as its ``BASE`` build argument.
3. ``localhost/borescope-demo-app:<hash>``: ``tests/podman/app/demo.c``
   compiled static and put in an image ``FROM scratch`` (no shell, no libc).

Run ``python -m tests.podman.build`` to build (or find) the images and print
the sidecar's uncompressed size; ``--cold`` rebuilds everything without any
cache. ``python -m tests.podman.measure`` measures the README's figures.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tests.podman import prune

REPO = Path(__file__).resolve().parents[2]
APP_DIR = Path(__file__).resolve().parent / "app"

BASE_REPO = "localhost/borescope-base"
SIDECAR_REPO = "localhost/borescope-sidecar"
APP_REPO = "localhost/borescope-demo-app"

SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
DEBOOTSTRAP_ARGS = ("--variant=minbase", "--include=python3", SUITE)
#: ``podman import`` keeps no environment: give RUN steps and containers the
#: PATH a registry Debian image has.
BASE_ENV_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#: What the sidecar's build context holds (the Containerfile COPYs these).
SIDECAR_CONTEXT = ("pyproject.toml", "README.md", "agent", "sidecar", "tui", "protos")
#: The base stands in for debian:bookworm-slim, so trim it the same way: no docs,
#: man pages or translations, now (``slim()``) and in later ``apt-get install``s.
SLIM_DPKG_CFG = """\
# Like debian:*-slim (tests/podman/build.py): no docs, man pages or translations.
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
path-exclude /usr/share/lintian/*
"""
SLIM_DIRS = (
    "usr/share/doc",
    "usr/share/man",
    "usr/share/info",
    "usr/share/locale",
    "usr/share/lintian",
    "var/lib/apt/lists",
    "var/cache/apt",
)
SLIM_KEEP = ("copyright", "locale.alias", "lock")
#: Every image this module makes carries it (FROM inherits it), so old ones can be found.
LABEL = "io.borescope.e2e"
TOOLS = ("podman", "buildah", "debootstrap", "gcc", "nsenter")


class BuildError(RuntimeError):
    """A build step failed; the message names the step and ends with its output."""


@dataclass(frozen=True)
class Images:
    """The built (or found) images and how long each step took."""

    base: str
    sidecar: str
    app: str
    seconds: dict[str, float] = field(default_factory=dict)
    """Per step (base, sidecar, app); 0.0-ish when the tag was already there."""
    cached: dict[str, bool] = field(default_factory=dict)


def missing_tools() -> list[str]:
    """The programs this module needs that are not on PATH."""
    return [t for t in TOOLS if shutil.which(t) is None]


def run(argv: Sequence[str], what: str, *, timeout: float = 1800, **kw: object) -> str:
    """Run ``argv``; return its stdout.

    Raises:
        BuildError: non-zero exit (with the tail of its output) or timeout.
    """
    try:
        proc = subprocess.run(
            list(argv), capture_output=True, text=True, timeout=timeout, check=False, **kw
        )  # type: ignore[call-overload]
    except subprocess.TimeoutExpired as e:
        raise BuildError(f"{what}: timed out after {timeout:.0f} s") from e
    if proc.returncode != 0:
        tail = (proc.stdout + proc.stderr)[-3000:]
        raise BuildError(f"{what} failed (exit {proc.returncode}): {' '.join(argv)}\n{tail}")
    return str(proc.stdout)


def image_exists(ref: str) -> bool:
    """Whether podman's local storage has ``ref``."""
    return subprocess.run(["podman", "image", "exists", ref], check=False).returncode == 0


def image_size(ref: str) -> int:
    """Uncompressed size of ``ref`` in bytes (sum of its layers, as podman counts it)."""
    out = run(["podman", "image", "inspect", "--format", "{{.Size}}", ref], "podman inspect")
    return int(out.strip())


def _digest(parts: Iterable[bytes]) -> str:
    h = hashlib.sha256()
    for part in parts:
        # Length-prefixed, so ("ab", "c") and ("a", "bc") differ.
        h.update(len(part).to_bytes(8, "big"))
        h.update(part)
    return h.hexdigest()[:16]


def context_files(root: Path = REPO) -> list[str]:
    """The sidecar build context: tracked and new unignored files (working-tree state)."""
    out = run(
        ["git", "ls-files", "-co", "--exclude-standard", "--", *SIDECAR_CONTEXT],
        "git ls-files",
        cwd=root,
    )
    files = sorted({p for p in out.splitlines() if p and (root / p).is_file()})
    # Byte-code caches and editor droppings are not inputs.
    return [p for p in files if "__pycache__" not in p and not p.endswith(".pyc")]


def base_key() -> str:
    """Hash of what makes the base image."""
    return _digest(
        [
            SUITE.encode(),
            MIRROR.encode(),
            *(a.encode() for a in DEBOOTSTRAP_ARGS),
            SLIM_DPKG_CFG.encode(),
            *(d.encode() for d in SLIM_DIRS),
            LABEL.encode(),
        ]
    )


def slim(rootfs: Path) -> None:
    """Trim a debootstrapped tree like debian:*-slim (docs, man pages, translations, apt
    lists and caches), and keep later package installs trimmed."""
    (rootfs / "etc/dpkg/dpkg.cfg.d/borescope-slim").write_text(SLIM_DPKG_CFG)
    for rel in SLIM_DIRS:
        # topdown=False: files first, then the directories they leave empty.
        # os.walk does not follow symlinks, so nothing outside rootfs is touched.
        for dirpath, dirnames, filenames in os.walk(rootfs / rel, topdown=False):
            here = Path(dirpath)
            for name in filenames:
                if name not in SLIM_KEEP:
                    (here / name).unlink()
            for name in dirnames:
                sub = here / name
                if sub.is_symlink():
                    sub.unlink()
                elif not any(sub.iterdir()):
                    sub.rmdir()


def build_base(*, force: bool = False) -> tuple[str, float, bool]:
    """Make the debootstrap base image unless its tag exists.

    Returns:
        (image ref, seconds taken, whether it was already there).
    """
    ref = f"{BASE_REPO}:{base_key()}"
    if not force and image_exists(ref):
        return ref, 0.0, True
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="borescope-base-") as tmp:
        rootfs = Path(tmp) / "rootfs"
        run(["debootstrap", *DEBOOTSTRAP_ARGS, str(rootfs), MIRROR], "debootstrap", timeout=900)
        # apt's downloaded .debs are half the tree and no image needs them.
        slim(rootfs)
        tar = subprocess.Popen(
            ["tar", "--numeric-owner", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE
        )
        try:
            run(
                [
                    "podman",
                    "import",
                    "--change",
                    f"ENV PATH={BASE_ENV_PATH}",
                    "--change",
                    f"LABEL {LABEL}=base",
                    "-",
                    ref,
                ],
                "podman import",
                stdin=tar.stdout,
            )
        finally:
            assert tar.stdout is not None
            tar.stdout.close()
            if tar.wait() != 0:
                raise BuildError(f"tar of {rootfs} failed (exit {tar.returncode})")
    prune.tags(BASE_REPO)
    return ref, time.monotonic() - t0, False


def sidecar_key(base: str, files: Sequence[str], root: Path = REPO) -> str:
    """Hash of the base ref and every context file's path, mode and bytes."""
    parts = [base.encode()]
    for rel in files:
        path = root / rel
        parts += [rel.encode(), b"x" if os.access(path, os.X_OK) else b"-", path.read_bytes()]
    return _digest(parts)


def make_wheelhouse(ctx: Path) -> None:
    """Wheels for the project, its dependencies and pip/setuptools/wheel in ``ctx/wheelhouse``.

    The Containerfile installs from a ``wheelhouse/`` in the context when there
    is one (its offline mode). Containers here cannot verify PyPI's TLS (the
    egress CA is only in the host's trust store), so the host, whose pip is
    configured for it, fetches the wheels.
    """
    wheelhouse = ctx / "wheelhouse"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    run([*pip, "wheel", "--wheel-dir", str(wheelhouse), str(ctx)], "pip wheel (wheelhouse)")
    run(
        [*pip, "download", "--dest", str(wheelhouse), "pip", "setuptools>=68", "wheel"],
        "pip download (wheelhouse)",
    )


def build_sidecar(
    base: str, *, force: bool = False, no_cache: bool = False
) -> tuple[str, float, bool]:
    """``buildah bud`` of sidecar/Containerfile on ``base`` unless its tag exists.

    The context is a staged copy of exactly the hashed files, so the image is
    what the hash says (others may be editing the tree) and a virtualenv or
    caches in the checkout are never sent.

    Returns:
        (image ref, seconds taken, whether it was already there).
    """
    files = context_files()
    ref = f"{SIDECAR_REPO}:{sidecar_key(base, files)}"
    if not force and image_exists(ref):
        return ref, 0.0, True
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="borescope-ctx-") as tmp:
        ctx = Path(tmp)
        for rel in files:
            (ctx / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / rel, ctx / rel)
        make_wheelhouse(ctx)
        revision = run(["git", "rev-parse", "HEAD"], "git rev-parse", cwd=REPO).strip()
        changed = subprocess.run(
            ["git", "diff", "--quiet", "HEAD", "--", *SIDECAR_CONTEXT], cwd=REPO, check=False
        )
        if changed.returncode != 0:
            revision += "-dirty"  # built from uncommitted changes: say so in the label
        argv = [
            "buildah",
            "bud",
            "--layers",
            "--pull=never",
            "--label",
            f"{LABEL}=sidecar",
            "-f",
            str(ctx / "sidecar" / "Containerfile"),
            "--build-arg",
            f"BASE={base}",
            "--build-arg",
            f"REVISION={revision}",
            "-t",
            ref,
        ]
        if no_cache:
            argv.append("--no-cache")
        run([*argv, str(ctx)], "buildah bud sidecar/Containerfile")
    prune.tags(SIDECAR_REPO)
    prune.untagged(LABEL)
    return ref, time.monotonic() - t0, False


def app_key() -> str:
    """Hash of the demo app's source, Containerfile and compiler."""
    cc = run(["gcc", "--version"], "gcc --version").splitlines()[0]
    return _digest(
        [
            (APP_DIR / "demo.c").read_bytes(),
            (APP_DIR / "Containerfile").read_bytes(),
            cc.encode(),
            LABEL.encode(),
        ]
    )


def build_app(*, force: bool = False) -> tuple[str, float, bool]:
    """The static demo app in an image FROM scratch, unless its tag exists.

    Returns:
        (image ref, seconds taken, whether it was already there).
    """
    ref = f"{APP_REPO}:{app_key()}"
    if not force and image_exists(ref):
        return ref, 0.0, True
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="borescope-app-") as tmp:
        ctx = Path(tmp)
        run(
            ["gcc", "-O2", "-static", "-o", str(ctx / "demo"), str(APP_DIR / "demo.c")],
            "gcc -static demo.c",
        )
        shutil.copy2(APP_DIR / "Containerfile", ctx / "Containerfile")
        (ctx / "logdir").mkdir()  # becomes /var/log/demo, owned by the app's uid
        run(
            [
                "buildah",
                "bud",
                "--label",
                f"{LABEL}=app",
                "-f",
                str(ctx / "Containerfile"),
                "-t",
                ref,
                str(ctx),
            ],
            "buildah bud app",
        )
    prune.tags(APP_REPO)
    return ref, time.monotonic() - t0, False


def build_all(*, cold: bool = False) -> Images:
    """Every image, reusing the ones whose inputs did not change.

    Args:
        cold: rebuild everything, the sidecar without buildah's layer cache
            (this is how the README's cold build time is measured).

    Raises:
        BuildError: a step failed.
    """
    seconds: dict[str, float] = {}
    cached: dict[str, bool] = {}
    base, seconds["base"], cached["base"] = build_base(force=cold)
    sidecar, seconds["sidecar"], cached["sidecar"] = build_sidecar(base, force=cold, no_cache=cold)
    app, seconds["app"], cached["app"] = build_app(force=cold)
    return Images(base=base, sidecar=sidecar, app=app, seconds=seconds, cached=cached)


def main(argv: Sequence[str] | None = None) -> int:
    """Build or find the images; print refs, the sidecar's size and the times."""
    p = argparse.ArgumentParser(
        prog="python -m tests.podman.build", description=__doc__.split("\n")[0]
    )
    p.add_argument("--cold", action="store_true", help="rebuild everything with no cache")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    args = p.parse_args(argv)
    missing = missing_tools()
    if missing:
        print(f"missing tools: {', '.join(missing)} (run .ci/podman-setup.sh)", file=sys.stderr)
        return 1
    t0 = time.monotonic()
    try:
        images = build_all(cold=args.cold)
    except BuildError as e:
        print(str(e), file=sys.stderr)
        return 1
    total = time.monotonic() - t0
    size = image_size(images.sidecar)
    if args.json:
        doc = {
            "base": images.base,
            "sidecar": images.sidecar,
            "app": images.app,
            "sidecar_bytes": size,
            "app_bytes": image_size(images.app),
            "seconds": images.seconds,
            "cached": images.cached,
            "total_seconds": total,
        }
        print(json.dumps(doc, indent=2))
        return 0
    for step in ("base", "sidecar", "app"):
        ref = getattr(images, step)
        how = "cached" if images.cached[step] else f"built in {images.seconds[step]:.1f} s"
        print(f"{step:8} {ref}  ({how})")
    print(f"sidecar image: {size / 1e6:.1f} MB uncompressed")
    print(f"total: {total:.1f} s ({'cold, no cache' if args.cold else 'cached where possible'})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
