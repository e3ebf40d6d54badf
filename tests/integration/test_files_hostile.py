"""Confinement against a hostile container root, with both resolvers.

A real process is chrooted into the hostile tree in its own mount namespace,
so ``/proc/PID/root`` is what a container's root is to the sidecar. Every case
runs with openat2 and with the O_NOFOLLOW walk. No canary may ever come back,
and no call may hang (pytest-timeout and per-call thread timeouts).
"""

from __future__ import annotations

import concurrent.futures
import ctypes
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from agent import _fs_walk
from agent._fs import ContainerFs, FsPolicy
from agent._fs_resolve import open_in_root, open_regular_in_root, resolver_forced
from agent.errors import AccessDenied, BorescopeError, InvalidArgument, NotAllowed, NotFound
from agent.results.fs import FileType
from tests.integration.hostile_root import (
    BIG_ENTRIES,
    DEEP_LEVELS,
    HOSTILE_NAMES,
    SA_DIR,
    SECRET_DIR,
    SPARSE_SIZE,
    Hostile,
    build,
    cleanup,
    hostile_target,
    is_root,
)

pytestmark = [
    pytest.mark.skipif(not is_root(), reason="needs root: mount namespace, chroot, mknod"),
    pytest.mark.timeout(60),
]

CALL_TIMEOUT = 5.0
_pool = concurrent.futures.ThreadPoolExecutor(4, thread_name_prefix="hostile")


@pytest.fixture(scope="module")
def hostile() -> Iterator[tuple[Hostile, int]]:
    """The hostile tree and the pid of a process chrooted into it."""
    h = build()
    try:
        with hostile_target(h) as pid:
            yield h, pid
    finally:
        cleanup(h)


@pytest.fixture(params=["openat2", "walk"])
def mode(request: pytest.FixtureRequest) -> Iterator[str]:
    """Each test runs with the openat2 resolver and with the walk fallback."""
    with resolver_forced(request.param):
        yield request.param


def bounded(fn: Callable[..., Any], *args: Any, **kw: Any) -> Any:
    """Run a call with a deadline: a hang fails the test instead of blocking it."""
    return _pool.submit(fn, *args, **kw).result(timeout=CALL_TIMEOUT)


def no_canary(h: Hostile, data: bytes | str) -> None:
    raw = data.encode() if isinstance(data, str) else data
    for c in h.all_canaries():
        assert c not in raw, "a canary escaped the root"


def fs_of(hp: tuple[Hostile, int], **policy: Any) -> tuple[Hostile, ContainerFs]:
    h, pid = hp
    return h, ContainerFs(f"/proc/{pid}/root", pid, FsPolicy(**policy))


def read_or_error(fs: ContainerFs, path: str) -> bytes | BorescopeError:
    try:
        return bounded(fs.read, path).data  # type: ignore[no-any-return]
    except BorescopeError as e:
        return e


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/abs_canary", NotFound),  # 1 absolute symlink to a host-only file
        ("/rel_canary", NotFound),  # 2 relative ../ chain out of the root
        ("/dir_abs/secret.txt", NotFound),  # 3 absolute symlink to a host directory
        ("/../../../../../../etc/hostname", b"hostile-root\n"),  # 4 request ../ clamped at root
        ("/dotdot/etc/hostname", b"hostile-root\n"),  # 5 a link of ../../.. stays at the root
        ("/etc_link/hostname", b"hostile-root\n"),  # 6 /etc link means the container's /etc
        ("/loop_a", InvalidArgument),  # 7 a symlink loop
        ("/self_loop", InvalidArgument),  # 8 a self loop
        ("/chain0", InvalidArgument),  # 9 45 links: beyond the 40-link bound
        ("/proc_self_root_canary", (InvalidArgument, NotAllowed)),  # 10 /proc/self/root magic link
        ("/proc_1_root", (InvalidArgument, NotAllowed, AccessDenied)),  # 11 /proc/1/root magic link
        ("/proc/self/root/etc/hostname", (InvalidArgument, NotAllowed)),  # 12 direct magic path
        ("/proc/self/status", NotAllowed),  # 13 the container's /proc is off by default
        ("/sys/kernel/address_bits", NotAllowed),  # 14 the container's /sys is off by default
        ("/fifo", InvalidArgument),  # 15 a FIFO: refused without hanging
        ("/null", InvalidArgument),  # 16 a character device (mknod 1,3)
        ("/zero", InvalidArgument),  # 17 /dev/zero's device: would be endless
        ("/sock", InvalidArgument),  # 18 a unix socket
        (f"/{SA_DIR}/token", NotAllowed),  # 19 service-account token mount
        ("/sa_link", NotAllowed),  # 20 a symlink into the token mount
        (f"/{SECRET_DIR}/password", NotAllowed),  # 21 a read-only tmpfs Secret
        ("relative/path", InvalidArgument),  # 22 relative paths are refused
        ("/app/ok.txt\x00/../../x", InvalidArgument),  # 23 NUL byte
        ("/app", InvalidArgument),  # 24 a directory is not read as a file
        ("/race/b/f", NotFound),  # 25 the race's symlink side, at rest
        ("/app/ok.txt", b"inside-ok\n"),  # 26 the control: an ordinary file reads
    ],
)
def test_hostile_paths(hostile: tuple[Hostile, int], mode: str, path: str, expected: Any) -> None:
    """Each hostile path yields the container's own bytes or the right refusal, never a canary."""
    h, fs = fs_of(hostile)
    got = read_or_error(fs, path)
    if isinstance(expected, bytes):
        assert got == expected
    else:
        assert isinstance(got, expected), f"{path}: {got!r}"
        no_canary(h, str(got))
    if isinstance(got, bytes):
        no_canary(h, got)


def test_open_in_root_never_returns_host_file(hostile: tuple[Hostile, int], mode: str) -> None:
    """The low-level resolvers give an fd for the container's /etc/passwd, not the host's."""
    _h, pid = hostile
    root = f"/proc/{pid}/root"
    for p in ("/etc/passwd", "/../etc/passwd", "/dotdot/etc/passwd", "/etc_link/passwd"):
        fd = bounded(open_regular_in_root, root, p)
        try:
            data = os.read(fd, 4096)
        finally:
            os.close(fd)
        assert data.startswith(b"root:x:0:0::/:/nonexistent\napp:")
    # /proc/self/cwd is a magic link: refused by both resolvers, never followed.
    with pytest.raises(InvalidArgument):
        bounded(open_in_root, root, "/proc_self_cwd/..", os.O_RDONLY | os.O_DIRECTORY)


def test_proc_allowed_by_config_still_refuses_magic_links(
    hostile: tuple[Hostile, int], mode: str
) -> None:
    """With allow_proc_sys the container's /proc reads, but /proc/PID/root still cannot lead out."""
    h, fs = fs_of(hostile, allow_proc_sys=True)
    got = read_or_error(fs, "/proc/self/stat")
    assert isinstance(got, bytes) and got
    for p in ("/proc_self_root_canary", "/proc/1/root" + str(h.host_dir / "secret.txt")):
        got = read_or_error(fs, p)
        assert isinstance(got, (InvalidArgument, NotFound, AccessDenied)), (p, got)
        no_canary(h, str(got))


def test_sensitive_mounts_allowed_by_config(hostile: tuple[Hostile, int], mode: str) -> None:
    """allow_sensitive_paths opens the token and the Secret, and says which mount they are on."""
    h, fs = fs_of(hostile, allow_sensitive_paths=True)
    r = bounded(fs.read, f"/{SA_DIR}/token")
    assert r.data == h.sa_token
    assert r.info.sensitive == "service-account token"
    r = bounded(fs.read, f"/{SECRET_DIR}/password")
    assert r.data == h.secret
    assert "tmpfs" in r.info.sensitive


def test_listing_marks_what_would_be_refused(hostile: tuple[Hostile, int], mode: str) -> None:
    """ls of the root shows every entry, with the reason a read would be refused."""
    h, fs = fs_of(hostile)
    listing = bounded(fs.list_dir, "/")
    by = {e.name: e for e in listing.entries}
    assert by["fifo"].type is FileType.FIFO and "not a regular file" in by["fifo"].denied_reason
    assert by["null"].type is FileType.CHAR_DEVICE
    assert by["abs_canary"].type is FileType.SYMLINK
    assert by["abs_canary"].symlink_target == str(h.host_dir / "secret.txt")
    assert "proc" in by["proc"].denied_reason and "allow_proc_sys" in by["proc"].denied_reason
    assert by["app"].denied_reason == ""
    sa = bounded(fs.list_dir, f"/{SA_DIR}")
    token = next(e for e in sa.entries if e.name == "token")
    assert "allow_sensitive_paths" in token.denied_reason
    assert token.user == "root"


def test_sparse_file_is_bounded(hostile: tuple[Hostile, int], mode: str) -> None:
    """A sparse 10 GiB file: stat tells it is sparse, a read is clamped to max_read_bytes."""
    _h, fs = fs_of(hostile, max_read_bytes=1 << 16)
    info = bounded(fs.stat, "/sparse")
    assert info.size == SPARSE_SIZE and info.allocated < 1 << 20
    r = bounded(fs.read, "/sparse", 5 << 30, 10 << 20)
    assert r.data == b"\0" * (1 << 16) and not r.eof and r.file_size == SPARSE_SIZE


def test_hostile_names_come_back_exact(hostile: tuple[Hostile, int], mode: str) -> None:
    """Names with newlines, escapes and invalid UTF-8 are listed with their exact bytes."""
    _h, fs = fs_of(hostile)
    listing = bounded(fs.list_dir, "/names")
    assert {e.raw_name for e in listing.entries} == set(HOSTILE_NAMES)
    for e in listing.entries:
        assert e.name == e.raw_name.decode("utf-8", "replace")


def test_big_directory_pages(hostile: tuple[Hostile, int], mode: str) -> None:
    """A 10k-entry directory comes back in bounded pages, each entry exactly once."""
    _h, fs = fs_of(hostile)
    seen: list[bytes] = []
    token = ""
    pages = 0
    while True:
        page = bounded(fs.list_dir, "/big", token, 3000)
        assert len(page.entries) <= 3000 and page.total == BIG_ENTRIES
        seen += [e.raw_name for e in page.entries]
        pages += 1
        token = page.next_token
        if not token:
            break
    assert pages == 4 and len(seen) == BIG_ENTRIES == len(set(seen))


def test_deep_nesting(hostile: tuple[Hostile, int], mode: str) -> None:
    """200 levels resolve; find stops at its depth bound and says it was truncated."""
    _h, fs = fs_of(hostile)
    path = "/" + "/".join(["d"] * DEEP_LEVELS) + "/bottom.txt"
    assert bounded(fs.read, path).data == b"bottom\n"
    res = bounded(_fs_walk.find, fs, "/", name="bottom.txt", max_depth=50)
    assert res.matches == () and res.truncated
    res = bounded(_fs_walk.find, fs, "/", name="bottom.txt", max_depth=256)
    assert [m.path for m in res.matches] == [path]


def test_find_does_not_follow_links_or_enter_proc(hostile: tuple[Hostile, int], mode: str) -> None:
    """find walks without following symlinks and skips /proc and /sys."""
    _h, fs = fs_of(hostile)
    res = bounded(_fs_walk.find, fs, "/", glob="dir_abs*", max_depth=4)
    assert [(m.path, m.type) for m in res.matches] == [("/dir_abs", FileType.SYMLINK)]
    assert bounded(_fs_walk.find, fs, "/", name="secret.txt").matches == ()
    # /proc/<pid>/status and /sys/kernel/address_bits exist in the container, unwalked.
    assert bounded(_fs_walk.find, fs, "/", name="status", max_depth=3).matches == ()
    assert bounded(_fs_walk.find, fs, "/", name="address_bits", max_depth=3).matches == ()


def test_file_growing_and_truncated_during_download(
    hostile: tuple[Hostile, int], mode: str
) -> None:
    """A growing file stops at its size at start; a truncated one stops early; both say changed."""
    h, fs = fs_of(hostile)
    grow = h.root / "tmp/growing.log"
    grow.write_bytes(b"x" * (4 << 20))
    with bounded(fs.download, "/tmp/growing.log", 0, 1 << 20) as dl:
        got = b""
        for _off, data in dl.chunks():
            got += data
            with open(grow, "ab") as f:
                f.write(b"y" * 100_000)
        done = dl.done()
    assert got == b"x" * (4 << 20) and done.size == 4 << 20 and done.changed_during_read
    shrink = h.root / "tmp/shrinking.log"
    shrink.write_bytes(b"z" * (4 << 20))
    with bounded(fs.download, "/tmp/shrinking.log", 0, 1 << 20) as dl:
        got = b""
        for _off, data in dl.chunks():
            got += data
            os.truncate(shrink, 1 << 20)
        done = dl.done()
    assert done.changed_during_read and done.size == len(got) == 1 << 20


RENAME_EXCHANGE = 2


def test_rename_exchange_race(hostile: tuple[Hostile, int], mode: str) -> None:
    """While a thread swaps a real dir and a symlink to the host, reads never see the canary."""
    h, fs = fs_of(hostile)
    libc = ctypes.CDLL(None, use_errno=True)
    a = os.fsencode(h.root / "race/a")
    b = os.fsencode(h.root / "race/b")
    stop = threading.Event()
    swaps = 0

    def swapper() -> None:
        nonlocal swaps
        while not stop.is_set():
            if libc.renameat2(-100, a, -100, b, RENAME_EXCHANGE) == 0:
                swaps += 1

    t = threading.Thread(target=swapper, daemon=True)
    t.start()
    outcomes: dict[str, int] = {}
    try:
        deadline = time.monotonic() + 0.8
        while time.monotonic() < deadline:
            for p in ("/race/a/f", "/race/b/f"):
                got = read_or_error(fs, p)
                no_canary(h, got if isinstance(got, bytes) else str(got))
                key = got.decode() if isinstance(got, bytes) else type(got).__name__
                outcomes[key] = outcomes.get(key, 0) + 1
    finally:
        stop.set()
        t.join()
        if os.path.islink(a):  # leave the tree as built for the other tests
            libc.renameat2(-100, a, -100, b, RENAME_EXCHANGE)
    assert swaps > 10
    assert outcomes.get("race-safe\n", 0) > 0
    assert set(outcomes) <= {"race-safe\n", "NotFound", "InvalidArgument"}


def test_mounts_flag_sensitive(hostile: tuple[Hostile, int], mode: str) -> None:
    """The container's mountinfo lists its own mounts and flags the token and the Secret."""
    _h, fs = fs_of(hostile)
    mounts = {m.mount_point: m for m in fs.mounts()}
    assert mounts[f"/{SA_DIR}"].sensitive == "service-account token"
    assert "tmpfs" in mounts[f"/{SECRET_DIR}"].sensitive
    assert mounts["/proc"].fs_type == "proc" and mounts["/proc"].sensitive == ""
    usage = _fs_walk.filesystems(fs)
    assert all(u.fs_type not in ("proc", "sysfs") for u in usage.filesystems)
    # A chroot's root is no mount of its own, yet df still starts with it.
    assert usage.filesystems[0].mount_point == "/" and usage.filesystems[0].total_bytes > 0


def test_du_counts_sparse_by_allocation(hostile: tuple[Hostile, int], mode: str) -> None:
    """du of the root is bounded, counts allocated bytes (the 10 GiB sparse file is ~0)."""
    _h, fs = fs_of(hostile)
    res = bounded(_fs_walk.du, fs, "/", 0, 50_000)
    assert res.total_bytes < 1 << 30
    assert res.dirs[0].path == "/"
    limited = bounded(_fs_walk.du, fs, "/", 0, 100)
    assert limited.truncated


def test_exited_target_is_not_found(tmp_path: Path, mode: str) -> None:
    """A container whose process is gone: NotFound, not a crash or a host path."""
    fs = ContainerFs("/proc/999999999/root", None)
    with pytest.raises(NotFound):
        fs.read("/etc/passwd")


def test_resolved_paths_are_container_paths(hostile: tuple[Hostile, int], mode: str) -> None:
    """Reads report the path the container sees after symlinks, never a host path."""
    h, fs = fs_of(hostile, allow_sensitive_paths=True)
    assert bounded(fs.read, "/etc_link/hostname").info.path == "/etc/hostname"
    assert bounded(fs.read, "/sa_link").info.path == f"/{SA_DIR}/token"
    assert bounded(fs.stat, "/dotdot", True).path == "/"
    info = bounded(fs.stat, "/abs_canary")
    assert info.path == "/abs_canary" and str(h.root) not in info.path
