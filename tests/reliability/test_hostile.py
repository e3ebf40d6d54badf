"""Hostile target roots over the real gRPC API: nothing escapes, nothing hangs.

The tree from ``tests/integration/hostile_root.py`` (symlink escapes, loops,
magic links, FIFOs, devices, Secret mounts, hostile names) is read through
every reading RPC of a real sidecar, with each host canary searched in every
response and every error message. Added here: mounts inside the target (a
tmpfs that shadows a directory, with an escaping link inside it), files whose
permissions deny the sidecar's UID (a sidecar running as the app's non-root
UID) and a target that exits in the middle of a read.
"""

from __future__ import annotations

import concurrent.futures
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import pytest

from protos import common_pb2, files_pb2
from sidecar.config import Config
from sidecar.sandbox.start import start_sandbox
from tests.conftest import Running, start_sidecar
from tests.integration.hostile_root import SA_DIR, SECRET_DIR, Hostile, build, cleanup, is_root
from tui.client import Client, Target

pytestmark = [
    pytest.mark.skipif(not is_root(), reason="needs root: mount namespace, chroot, mknod"),
    pytest.mark.timeout(120),
]

CALL_S = 10.0
_pool = concurrent.futures.ThreadPoolExecutor(4, thread_name_prefix="rel-hostile")
UNDER = b"UNDER-THE-MOUNT-CANARY"

_CHILD = (
    "import os,sys; os.chroot(sys.argv[1]); os.chdir('/'); "
    "sys.stdout.write('ready\\n'); sys.stdout.flush(); sys.stdin.read()"
)


class HostileTarget:
    """The hostile tree with extra mounts, a chrooted process in it, and a sidecar."""

    def __init__(self, h: Hostile, proc: subprocess.Popen[bytes], r: Running) -> None:
        self.h, self.proc, self.r = h, proc, r
        self.sel = common_pb2.ContainerSelector(id=f"local-{proc.pid}")
        self.canaries = (*h.all_canaries(), UNDER)

    def call(self, fn: Callable[[], Any]) -> tuple[str, bytes]:
        """Run one call with a deadline; return (code, all bytes received incl. details)."""

        def run() -> tuple[str, bytes]:
            try:
                out = fn()
                msgs = out if isinstance(out, list) else [out]
                return "OK", b"".join(m.SerializeToString() for m in msgs)
            except grpc.RpcError as e:
                return e.code().name, (e.details() or "").encode()  # type: ignore[attr-defined]

        code, data = _pool.submit(run).result(timeout=CALL_S + 5)
        for c in self.canaries:
            assert c not in data, f"a canary escaped: {c!r}"
        return code, data


def _start(h: Hostile) -> subprocess.Popen[bytes]:
    r = h.root
    (r / "mnt/inner").mkdir(parents=True)
    (r / "mnt/inner/under.txt").write_bytes(UNDER)
    script = f"""set -e
mount -t proc proc {r}/proc
mount -t sysfs sysfs {r}/sys
mount -t tmpfs -o size=1m tmpfs {r}/{SA_DIR}
printf %s '{h.sa_token.decode()}' > {r}/{SA_DIR}/token
mount -o remount,ro {r}/{SA_DIR}
mount -t tmpfs -o size=1m tmpfs {r}/{SECRET_DIR}
printf %s '{h.secret.decode()}' > {r}/{SECRET_DIR}/password
mount -o remount,ro {r}/{SECRET_DIR}
mount -t tmpfs -o size=1m tmpfs {r}/mnt/inner
printf %s 'from-the-mount' > {r}/mnt/inner/inner.txt
ln -s ../../../../../../{h.host_dir.relative_to("/")}/secret.txt {r}/mnt/inner/esc
ln -s /{SECRET_DIR}/password {r}/mnt/inner/to_secret
exec {sys.executable} -c "{_CHILD}" {r}
"""
    p = subprocess.Popen(
        ["unshare", "-m", "--propagation", "private", "sh", "-c", script],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert p.stdout is not None
    assert p.stdout.readline() == b"ready\n"
    return p


@pytest.fixture(scope="module")
def target() -> Iterator[HostileTarget]:
    h = build()
    p = _start(h)
    r = start_sidecar(Config(local_root=p.pid))
    try:
        yield HostileTarget(h, p, r)
    finally:
        r.client.close()
        r.sidecar.stop(0)
        if p.stdin is not None:
            p.stdin.close()
        p.wait(5)
        cleanup(h)


REFUSED = {"NOT_FOUND", "INVALID_ARGUMENT", "PERMISSION_DENIED"}
#: (path, what must come back: bytes for a read that succeeds, else "refused").
PATHS: list[tuple[str, bytes | str]] = [
    ("/abs_canary", "refused"),
    ("/rel_canary", "refused"),
    ("/dir_abs/secret.txt", "refused"),
    ("/../../../../../../etc/hostname", b"hostile-root\n"),
    ("/dotdot/etc/hostname", b"hostile-root\n"),
    ("/etc_link/hostname", b"hostile-root\n"),
    ("/loop_a", "refused"),
    ("/self_loop", "refused"),
    ("/chain0", "refused"),
    ("/proc_self_root_canary", "refused"),
    ("/proc_1_root", "refused"),
    ("/proc/self/root/etc/hostname", "refused"),
    ("/proc/self/environ", "refused"),
    ("/sys/kernel/address_bits", "refused"),
    ("/fifo", "refused"),
    ("/null", "refused"),
    ("/zero", "refused"),
    ("/sock", "refused"),
    (f"/{SA_DIR}/token", "refused"),
    ("/sa_link", "refused"),
    (f"/{SECRET_DIR}/password", "refused"),
    ("relative/path", "refused"),
    ("/app", "refused"),
    ("/race/b/f", "refused"),
    ("/app/ok.txt", b"inside-ok\n"),
    ("/mnt/inner/inner.txt", b"from-the-mount"),  # mount inside the target: its content
    ("/mnt/inner/under.txt", "refused"),  # shadowed by the mount: the host's view is not used
    ("/mnt/inner/esc", "refused"),  # an escaping link inside the mount
    ("/mnt/inner/to_secret", "refused"),  # a link from one mount into the Secret mount
]


def _read(t: HostileTarget, rpc: str, path: str) -> Callable[[], Any]:
    f, md, sel = t.r.client.files, t.r.client.metadata, t.sel
    if rpc == "ReadFile":
        return lambda: f.ReadFile(
            files_pb2.ReadFileRequest(container=sel, path=path), metadata=md, timeout=CALL_S
        )
    if rpc == "Download":
        return lambda: list(
            f.Download(
                files_pb2.DownloadRequest(container=sel, path=path), metadata=md, timeout=CALL_S
            )
        )
    if rpc == "HashFile":
        return lambda: f.HashFile(
            files_pb2.HashFileRequest(container=sel, path=path), metadata=md, timeout=CALL_S
        )

    def follow() -> list[Any]:
        out = []
        call = f.FollowFile(
            files_pb2.FollowFileRequest(
                container=sel, path=path, **{"from": files_pb2.FOLLOW_FROM_START}
            ),
            metadata=md,
            timeout=3,
        )
        try:
            for m in call:
                out.append(m)
                if m.data:
                    break
        except grpc.RpcError as e:
            if e.code() != grpc.StatusCode.DEADLINE_EXCEEDED or not out:  # type: ignore[attr-defined]
                raise
        call.cancel()
        return out

    return follow  # fmt: skip


@pytest.mark.parametrize("rpc", ["ReadFile", "Download", "HashFile", "FollowFile"])
@pytest.mark.parametrize(("path", "expected"), PATHS, ids=[p for p, _ in PATHS])
def test_hostile_path_over_rpc(target: HostileTarget, rpc: str, path: str, expected: Any) -> None:
    """Each hostile path, through each reading RPC, returns the container's own bytes or a
    refusal (NOT_FOUND / INVALID_ARGUMENT / PERMISSION_DENIED) within the deadline; no
    host canary, token, Secret or shadowed file appears in any response or message."""
    t0 = time.monotonic()
    code, data = target.call(_read(target, rpc, path))
    assert time.monotonic() - t0 < CALL_S
    if expected == "refused":
        assert code in REFUSED, (code, data)
    else:
        assert code == "OK", (code, data)
        if rpc != "HashFile":
            assert expected in data


def test_listing_and_mounts_see_the_targets_mount_namespace(target: HostileTarget) -> None:
    """ListDir of a tmpfs mounted inside the target shows the mount's entries (not the
    directory it shadows), and ListMounts names it; the Secret mounts are flagged."""
    c = target.r.client
    code, data = target.call(lambda: c.files.ListDir(files_pb2.ListDirRequest(container=target.sel, path="/mnt/inner"), metadata=c.metadata, timeout=CALL_S))  # fmt: skip
    assert code == "OK" and b"inner.txt" in data and b"under.txt" not in data
    code, data = target.call(lambda: c.files.ListMounts(files_pb2.ListMountsRequest(container=target.sel), metadata=c.metadata, timeout=CALL_S))  # fmt: skip
    assert code == "OK" and b"/mnt/inner" in data and SECRET_DIR.encode() in data


def test_find_and_du_over_the_whole_hostile_root_end(target: HostileTarget) -> None:
    """Find and DiskUsage over the whole hostile root (10k-entry dir, 200 levels, loops,
    a 10 GiB sparse file, /proc) end within the deadline with no canary."""
    c = target.r.client
    for fn in (
        lambda: c.files.Find(files_pb2.FindRequest(container=target.sel, path="/", max_results=100_000), metadata=c.metadata, timeout=CALL_S),
        lambda: c.files.DiskUsage(files_pb2.DiskUsageRequest(container=target.sel, path="/"), metadata=c.metadata, timeout=CALL_S),
    ):  # fmt: skip
        code, _ = target.call(fn)
        assert code in ("OK", "RESOURCE_EXHAUSTED", "DEADLINE_EXCEEDED"), code


@pytest.fixture(scope="module")
def app_user_pod() -> Iterator[Any]:
    """A sandbox pod whose sidecar runs as the app's UID without capabilities, with files
    in the app's root the UID cannot read (root-owned 0600 file, 0700 directory)."""
    with start_sandbox("pod", interval=1.0, sidecar_as_app_user=True) as sb:
        root = sb.app_root
        os.makedirs(f"{root}/private", mode=0o700, exist_ok=True)
        os.chmod(f"{root}/private", 0o700)
        with open(f"{root}/private/inside.txt", "w") as fh:
            fh.write("PRIVATE-DIR-CANARY")
        with open(f"{root}/root-only.txt", "w") as fh:
            fh.write("ROOT-ONLY-CANARY")
        os.chmod(f"{root}/root-only.txt", 0o600)
        c = Client(Target(sb.address, sb.token))
        c.wait_ready(10)
        yield sb, c
        c.close()


@pytest.mark.parametrize(
    ("rpc", "path"),
    [
        ("ReadFile", "/root-only.txt"),
        ("Download", "/root-only.txt"),
        ("HashFile", "/root-only.txt"),
        ("ListDir", "/private"),
        ("ReadFile", "/private/inside.txt"),
    ],
)
def test_files_the_sidecar_uid_cannot_read(app_user_pod: Any, rpc: str, path: str) -> None:
    """A sidecar running as the app's non-root UID gets PERMISSION_DENIED with a message
    naming the path for files and directories that UID may not read: no content, no hang."""
    _, c = app_user_pod
    sel = common_pb2.ContainerSelector()
    req = getattr(files_pb2, f"{rpc}Request")(container=sel, path=path)
    fn = getattr(c.files, rpc)
    with pytest.raises(grpc.RpcError) as e:
        out = fn(req, metadata=c.metadata, timeout=CALL_S)
        if rpc == "Download":
            list(out)
    assert e.value.code() == grpc.StatusCode.PERMISSION_DENIED, e.value
    details = e.value.details()  # type: ignore[attr-defined]
    assert path.rsplit("/", 1)[-1] in details or "permission" in details.lower(), details
    assert "CANARY" not in details


def test_target_exits_mid_read(target: HostileTarget) -> None:
    """A second target is killed while a Download of a 20 MiB file and a FollowFile are
    streaming: both streams end by themselves within seconds (the download completes from
    its open file or ends with a clear code; the follow ends NOT_FOUND or
    FAILED_PRECONDITION naming the container, with the resume cursor in its trailer), new
    calls on the gone container say NOT_FOUND, and the sidecar keeps serving the first
    target."""
    with open(target.h.root / "twenty", "wb") as fh:
        fh.truncate(20 << 20)
    p = _start_again(target.h)
    r = target.r
    sel = common_pb2.ContainerSelector(id=f"mnt-{os.stat(f'/proc/{p.pid}/ns/mnt').st_ino}")
    md = r.client.metadata
    dl = r.client.files.Download(files_pb2.DownloadRequest(container=sel, path="/twenty", chunk_size=1 << 16), metadata=md, timeout=30)  # fmt: skip
    next(dl)
    ff = r.client.files.FollowFile(files_pb2.FollowFileRequest(container=sel, path="/app/ok.txt", **{"from": files_pb2.FOLLOW_FROM_START}), metadata=md, timeout=12)  # fmt: skip
    next(ff)
    p.kill()
    p.wait()
    t0 = time.monotonic()
    ends = {}
    follow_error: Any = None
    for name, stream in (("Download", dl), ("FollowFile", ff)):
        try:
            for _ in stream:
                if time.monotonic() - t0 > 10:
                    stream.cancel()
        except grpc.RpcError as e:
            ends[name] = e.code().name  # type: ignore[attr-defined]
            if name == "FollowFile":
                follow_error = e
        else:
            ends[name] = "OK"
    took = time.monotonic() - t0
    assert took < 10, f"a stream kept running {took:.1f} s after its target exited: {ends}"
    assert set(ends.values()) <= {"OK", "NOT_FOUND", "FAILED_PRECONDITION", "RESOURCE_EXHAUSTED"}, (
        ends
    )
    # A follow can never end by itself: it must be one of the clear codes, naming the container.
    assert ends["FollowFile"] in {"NOT_FOUND", "FAILED_PRECONDITION"}, ends
    assert sel.id in follow_error.details(), follow_error.details()
    trailer = dict(follow_error.trailing_metadata() or ())
    assert "borescope-cursor" in trailer, trailer
    with pytest.raises(grpc.RpcError) as e:
        r.client.files.ReadFile(files_pb2.ReadFileRequest(container=sel, path="/app/ok.txt"), metadata=md, timeout=CALL_S)  # fmt: skip
    assert e.value.code() == grpc.StatusCode.NOT_FOUND
    code, _ = target.call(lambda: r.client.files.ReadFile(files_pb2.ReadFileRequest(container=target.sel, path="/app/ok.txt"), metadata=md, timeout=CALL_S))  # fmt: skip
    assert code == "OK"


def _start_again(h: Hostile) -> subprocess.Popen[bytes]:
    """Another process chrooted into the same tree (its own mount namespace, no mounts)."""
    p = subprocess.Popen(
        ["unshare", "-m", "--propagation", "private", sys.executable, "-c", _CHILD, str(h.root)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert p.stdout is not None and p.stdout.readline() == b"ready\n"
    return p
