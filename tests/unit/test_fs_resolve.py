"""The confined resolver on plain directories (no root needed), with both resolvers.

A temporary directory is the container's root; a canary file lives next to
it, outside. Every case runs with openat2 and with the O_NOFOLLOW walk.
"""

from __future__ import annotations

import concurrent.futures
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent._fs_mounts import classify, parse_mountinfo
from agent._fs_resolve import (
    MAX_SYMLINKS,
    open_in_root,
    open_regular_in_root,
    resolver,
    resolver_forced,
    use_resolver,
)
from agent.errors import InvalidArgument, NotAllowed, NotFound

pytestmark = pytest.mark.timeout(30)
CANARY = b"CANARY-OUTSIDE-THE-ROOT"


@pytest.fixture(params=["openat2", "walk"])
def mode(request: pytest.FixtureRequest) -> Iterator[str]:
    """Run with the openat2 resolver and with the walk fallback."""
    with resolver_forced(request.param):
        yield request.param


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A small root with escape attempts; the canary sits outside it."""
    (tmp_path / "outside.txt").write_bytes(CANARY)
    r = tmp_path / "root"
    (r / "etc").mkdir(parents=True)
    (r / "etc/hostname").write_bytes(b"inside\n")
    os.symlink(str(tmp_path / "outside.txt"), r / "abs")
    os.symlink("../outside.txt", r / "rel")
    os.symlink("../../../../../../" + str(tmp_path / "outside.txt"), r / "deep_rel")
    os.symlink("/etc/hostname", r / "abs_inside")
    os.symlink("b", r / "a")
    os.symlink("a", r / "b")
    os.mkfifo(r / "fifo")
    for n in range(MAX_SYMLINKS + 1):
        os.symlink(f"c{n + 1}", r / f"c{n}")
    (r / f"c{MAX_SYMLINKS + 1}").write_bytes(b"end\n")
    return r


def read(root: Path, path: str) -> bytes:
    fd = open_regular_in_root(str(root), path)
    try:
        return os.read(fd, 4096)
    finally:
        os.close(fd)


def test_inside_reads(root: Path, mode: str) -> None:
    """Plain paths, '..' above the root and absolute links all resolve inside the root."""
    for p in ("/etc/hostname", "/../../etc/hostname", "/abs_inside", "/etc/../etc/./hostname"):
        assert read(root, p) == b"inside\n", p


@pytest.mark.parametrize("path", ["/abs", "/rel", "/deep_rel"])
def test_escapes_are_not_found(root: Path, mode: str, path: str) -> None:
    """Absolute, relative and deep-relative links to a file outside the root find nothing."""
    with pytest.raises(NotFound) as ei:
        read(root, path)
    assert CANARY.decode() not in str(ei.value)


def test_loops_and_link_budget(root: Path, mode: str) -> None:
    """A loop is refused; 40 links are followed, 41 are not (the kernel's MAXSYMLINKS)."""
    with pytest.raises(InvalidArgument):
        read(root, "/a")
    assert read(root, "/c1") == b"end\n"  # 40 links
    with pytest.raises(InvalidArgument):
        read(root, "/c0")  # 41 links


def test_fifo_refused_without_hanging(root: Path, mode: str) -> None:
    """Opening a FIFO with no writer would block forever; it is refused at once."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        fut = pool.submit(read, root, "/fifo")
        with pytest.raises(InvalidArgument, match="FIFO"):
            fut.result(timeout=3)


def test_bad_requests(root: Path, mode: str) -> None:
    """Relative paths, NUL bytes, write flags and directories-as-files are invalid."""
    for p in ("etc/hostname", "", "/etc\x00/x"):
        with pytest.raises(InvalidArgument):
            read(root, p)
    with pytest.raises(InvalidArgument, match="read-only"):
        open_in_root(str(root), "/etc/hostname", os.O_RDWR)
    with pytest.raises(InvalidArgument, match="directory"):
        read(root, "/etc")
    with pytest.raises(NotFound, match="not a directory"):
        read(root, "/etc/hostname/")


def test_nofollow_gives_the_link(root: Path, mode: str) -> None:
    """O_PATH|O_NOFOLLOW returns the symlink itself (for lstat), not its target."""
    fd = open_in_root(str(root), "/abs", os.O_PATH | os.O_NOFOLLOW)
    try:
        assert stat.S_ISLNK(os.stat(fd).st_mode)
    finally:
        os.close(fd)


def test_proc_refused_unless_allowed(mode: str) -> None:
    """/proc under the root is refused by default; magic links stay refused even when allowed."""
    with pytest.raises(NotAllowed, match="allow_proc_sys"):
        open_regular_in_root("/", "/proc/self/status")
    fd = open_regular_in_root("/", "/proc/self/status", allow_proc_sys=True)
    os.close(fd)
    with pytest.raises(InvalidArgument, match="magic"):
        open_regular_in_root("/", "/proc/self/root/etc/hostname", allow_proc_sys=True)


def test_resolver_selection() -> None:
    """The probe picks openat2 on this kernel; an unknown resolver name is refused."""
    use_resolver(None)
    assert resolver() in ("openat2", "walk")
    with pytest.raises(InvalidArgument):
        use_resolver("join-strings")
    use_resolver(None)


MOUNTINFO = b"""\
22 1 253:0 / / rw,relatime - ext4 /dev/vda rw
23 22 0:21 / /proc rw,nosuid - proc proc rw
30 22 0:40 / /var/run/secrets/kubernetes.io/serviceaccount ro,relatime - tmpfs tmpfs rw,size=1024k
31 22 0:41 / /etc/db\\040creds ro,relatime - tmpfs tmpfs rw
32 22 0:42 / /dev rw - tmpfs tmpfs rw
33 22 0:43 / /dev/shm ro - tmpfs shm rw
34 22 253:0 /var/lib/kubelet/pods/u/volumes/kubernetes.io~secret/db /etc/db rw - ext4 /dev/vda rw
35 22 253:0 /var/lib/kubelet/pods/u/volumes/kubernetes.io~projected/kube-api-access /var/token rw - ext4 /dev/vda rw
garbage line
"""


def test_mountinfo_and_sensitive_mounts() -> None:
    """mountinfo parses (octal escapes too) and token/Secret mounts are flagged; /dev is not."""
    by = {m.mount_point: m for m in parse_mountinfo(MOUNTINFO)}
    assert len(by) == 8
    assert by["/"].sensitive == "" and by["/proc"].fs_type == "proc"
    assert by["/var/run/secrets/kubernetes.io/serviceaccount"].sensitive == "service-account token"
    assert "tmpfs" in by["/etc/db creds"].sensitive
    assert by["/dev"].sensitive == "" and by["/dev/shm"].sensitive == ""
    assert by["/etc/db"].sensitive == "secret"
    assert "projected" in by["/var/token"].sensitive
    assert classify("/run/secrets/app", "/", "ext4", "/dev/vda", "rw") == "secret"


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to drop to another uid")
def test_unreadable_metadata_is_reported_not_dropped() -> None:
    """A name whose metadata the sidecar's uid cannot read is listed with the reason, not hidden."""
    import shutil
    import subprocess
    import sys
    import tempfile

    base = tempfile.mkdtemp(
        prefix="fs-perm-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None
    )
    try:
        os.chmod(base, 0o755)
        d = os.path.join(base, "noexec")
        os.mkdir(d)
        open(os.path.join(d, "secret.cfg"), "wb").close()
        os.chmod(d, 0o644)  # readable (names) but not searchable (no lstat)
        code = (
            "import sys; from agent._fs import ContainerFs;"
            "li = ContainerFs(sys.argv[1]).list_dir('/noexec');"
            "print([(e.name, e.denied_reason) for e in li.entries])"
        )
        root = str(Path(__file__).resolve().parents[2])
        out = subprocess.run(
            [
                "setpriv",
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                sys.executable,
                "-c",
                code,
                base,
            ],
            cwd=root,
            env={**os.environ, "PYTHONPATH": root},
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout
        assert "secret.cfg" in out and "permission denied" in out
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _outcome(root: str, path: str) -> str:
    try:
        fd = open_in_root(root, path, os.O_PATH)
    except (InvalidArgument, NotFound, NotAllowed) as e:
        return type(e).__name__
    try:
        st = os.fstat(fd)
        return f"{st.st_dev}:{st.st_ino}"
    finally:
        os.close(fd)


_PARTS = ["..", ".", "", "etc", "hostname", "sub", "up", "top", "self", "abs", "rel", "a", "x"]


@given(st.lists(st.sampled_from(_PARTS), min_size=1, max_size=7), st.booleans())
@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
def test_walk_agrees_with_openat2(tree_root: str, parts: list[str], slash: bool) -> None:
    """For random paths through links, '..' and dots, the walk lands exactly where openat2 does."""
    path = "/" + "/".join(parts) + ("/" if slash else "")
    with resolver_forced("openat2"):
        want = _outcome(tree_root, path)
    with resolver_forced("walk"):
        got = _outcome(tree_root, path)
    assert got == want, path


@pytest.fixture(scope="module")
def tree_root(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Links up, down, absolute, relative and looping, for the differential test."""
    base = tmp_path_factory.mktemp("diff")
    (base / "x").write_bytes(CANARY)
    r = base / "root"
    (r / "etc/sub").mkdir(parents=True)
    (r / "etc/hostname").write_bytes(b"inside\n")
    os.symlink("..", r / "etc/sub/up")
    os.symlink("/etc", r / "etc/sub/top")
    os.symlink(".", r / "etc/self")
    os.symlink("/etc/hostname", r / "abs")
    os.symlink("../x", r / "rel")
    os.symlink("etc/sub/up/sub/top", r / "a")
    os.symlink("a/../x", r / "etc/x")
    return str(r)
