# ruff: noqa: F811  (pytest fixtures are parameters named like the imported fixture)
"""The Files service over a real gRPC channel, against a chrooted target process.

The sidecar runs in-process in local mode with the hostile target's process
tree as the app container; every call goes through the real interceptors
(auth, audit, limits, errors).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import grpc
import pytest

from protos import common_pb2, files_pb2
from sidecar.config import Config
from tests.conftest import start_sidecar
from tests.integration.hostile_root import HOSTILE_NAMES, SA_DIR, Target, is_root

# The shared module-scoped fixture, imported under the name the tests use.
from tests.integration.hostile_root import sidecar_target as target  # noqa: F401

pytestmark = [
    pytest.mark.skipif(not is_root(), reason="needs root: mount namespace, chroot, mknod"),
    pytest.mark.timeout(60),
]
ROOT = Path(__file__).resolve().parents[2]


def test_listdir_exact_names_and_pages(target: Target) -> None:
    """ListDir returns hostile names byte-exact and pages a 10k directory by token."""
    files = target.r.client.files
    resp = files.ListDir(files_pb2.ListDirRequest(container=target.sel, path="/names"), **target.kw)
    assert {e.raw_name for e in resp.entries} == set(HOSTILE_NAMES)
    page = common_pb2.PageRequest(page_size=4000)
    got = 0
    while True:
        resp = files.ListDir(
            files_pb2.ListDirRequest(container=target.sel, path="/big", page=page), **target.kw
        )
        got += len(resp.entries)
        if not resp.page.next_page_token:
            break
        page = common_pb2.PageRequest(page_size=4000, page_token=resp.page.next_page_token)
    assert got == 10_000 and resp.page.total == 10_000


@pytest.mark.parametrize(
    ("path", "code"),
    [
        ("/abs_canary", grpc.StatusCode.NOT_FOUND),
        ("/no/such/file", grpc.StatusCode.NOT_FOUND),
        ("relative", grpc.StatusCode.INVALID_ARGUMENT),
        ("/fifo", grpc.StatusCode.INVALID_ARGUMENT),
        ("/proc/self/environ", grpc.StatusCode.PERMISSION_DENIED),
        (f"/{SA_DIR}/token", grpc.StatusCode.PERMISSION_DENIED),
    ],
)
def test_read_refusals_have_status_and_message(
    target: Target, path: str, code: grpc.StatusCode
) -> None:
    """Refused reads arrive as the right status code with a message naming the path or switch."""
    with pytest.raises(grpc.RpcError) as ei:
        target.r.client.files.ReadFile(
            files_pb2.ReadFileRequest(container=target.sel, path=path), **target.kw
        )
    assert ei.value.code() == code
    details = ei.value.details() or ""
    assert path in details or "allow_" in details
    assert target.h.canary.decode() not in details


def _download(target: Target, path: str, offset: int = 0) -> tuple[bytes, files_pb2.DownloadDone]:
    data = b""
    done = None
    for msg in target.r.client.files.Download(
        files_pb2.DownloadRequest(container=target.sel, path=path, offset=offset), **target.kw
    ):
        if msg.HasField("done"):
            done = msg.done
        data += msg.data
    assert done is not None
    return data, done


def test_download_byte_exact_and_resume(target: Target) -> None:
    """Download sends the exact bytes in <= ~1 MiB chunks; a resume hashes the whole file."""
    blob = os.urandom(3 * (1 << 20) + 12345)
    (target.h.root / "app/blob.bin").write_bytes(blob)
    chunks = list(
        target.r.client.files.Download(
            files_pb2.DownloadRequest(container=target.sel, path="/app/blob.bin"), **target.kw
        )
    )
    assert chunks[0].info.size == len(blob) and not chunks[0].data
    assert max(len(c.data) for c in chunks) <= 1 << 20
    data, done = _download(target, "/app/blob.bin")
    assert data == blob and done.sha256 == hashlib.sha256(blob).hexdigest()
    tail, done2 = _download(target, "/app/blob.bin", offset=2_000_000)
    assert tail == blob[2_000_000:] and done2.sha256 == done.sha256 and done2.size == len(blob)
    with pytest.raises(grpc.RpcError) as ei:
        _download(target, "/app/blob.bin", offset=len(blob) + 1)
    assert ei.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_hash_find_mounts_du(target: Target) -> None:
    """HashFile matches sha256sum; Find, ListMounts and DiskUsage answer from the container."""
    files = target.r.client.files
    h = files.HashFile(
        files_pb2.HashFileRequest(container=target.sel, path="/etc/passwd"), **target.kw
    )
    assert h.sha256 == hashlib.sha256((target.h.root / "etc/passwd").read_bytes()).hexdigest()
    found = files.Find(
        files_pb2.FindRequest(container=target.sel, path="/", glob="*.txt", max_depth=3),
        **target.kw,
    )
    assert "/app/ok.txt" in {m.path for m in found.matches}
    mounts = files.ListMounts(files_pb2.ListMountsRequest(container=target.sel), **target.kw)
    assert any(m.sensitive == "service-account token" for m in mounts.mounts)
    du = files.DiskUsage(files_pb2.DiskUsageRequest(container=target.sel, path="/app"), **target.kw)
    assert du.dirs[0].path == "/app" and du.total_bytes > 0
    df = files.DiskUsage(files_pb2.DiskUsageRequest(container=target.sel), **target.kw)
    assert df.filesystems and all(f.fs_type != "proc" for f in df.filesystems)


def test_sensitive_read_allowed_is_audited(target: Target, tmp_path: Path) -> None:
    """With allow_sensitive_paths the token reads, and the audit record names the mount, not the bytes."""
    audit_file = tmp_path / "audit.jsonl"
    r = start_sidecar(
        Config(local_root=target.pid, allow_sensitive_paths=True, audit_file=str(audit_file))
    )
    try:
        resp = r.client.files.ReadFile(
            files_pb2.ReadFileRequest(container=target.sel, path=f"/{SA_DIR}/token"),
            metadata=r.client.metadata,
            timeout=10,
        )
        assert resp.data == target.h.sa_token
        assert resp.info.sensitive == "service-account token" and not resp.info.denied_reason
        records = [
            rec
            for rec in map(json.loads, audit_file.read_text().splitlines())
            if rec["event"] == "rpc" and rec["method"].endswith("/ReadFile")
        ]
        assert len(records) == 1
        obj = records[0]["object"]
        assert obj["sensitive_mount"] == "service-account token"
        assert obj["path"] == f"/{SA_DIR}/token" and obj["container"] == f"local-{target.pid}"
        assert target.h.sa_token.decode() not in audit_file.read_text()
    finally:
        r.client.close()
        r.sidecar.stop(0)


def test_follow_file_appends_rotation_truncation(target: Target) -> None:
    """FollowFile streams appended bytes, reports rotation and truncation, and resumes by cursor."""
    log = target.h.root / "tmp/app.log"
    log.write_bytes(b"old line\n")
    req = files_pb2.FollowFileRequest(container=target.sel, path="/tmp/app.log")
    call = target.r.client.files.FollowFile(req, metadata=target.r.client.metadata, timeout=20)
    got: list[files_pb2.FollowFileResponse] = []

    def reader() -> None:
        try:
            for msg in call:
                got.append(msg)
        except grpc.RpcError:
            pass

    t = threading.Thread(target=reader, daemon=True)
    t.start()

    def wait_for(pred: object, limit: float = 5.0) -> None:
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            if pred():  # type: ignore[operator]
                return
            time.sleep(0.02)
        raise AssertionError(f"timed out; got {got!r}")

    time.sleep(0.3)
    with open(log, "ab") as f:
        f.write(b"first\n")
    wait_for(lambda: b"first\n" in b"".join(m.data for m in got))
    cursor = next(m.cursor for m in reversed(got) if m.data)
    os.rename(log, log.with_suffix(".log.1"))
    log.write_bytes(b"after rotation\n")
    wait_for(lambda: b"after rotation\n" in b"".join(m.data for m in got))
    assert any(m.event == files_pb2.FILE_EVENT_ROTATED for m in got)
    with open(log, "r+b") as f:
        f.truncate(0)
    time.sleep(0.2)
    with open(log, "ab") as f:
        f.write(b"x\n")
    wait_for(
        lambda: any(m.event == files_pb2.FILE_EVENT_TRUNCATED or m.HasField("gap") for m in got)
    )
    call.cancel()
    t.join(5)
    assert b"old line" not in b"".join(m.data for m in got)  # from END by default
    # Resume from the cursor taken after "first" (now in app.log.1): nothing of the old
    # file is repeated, and the current app.log (truncated, then "x") follows.
    resumed = target.r.client.files.FollowFile(
        files_pb2.FollowFileRequest(container=target.sel, path="/tmp/app.log", cursor=cursor),
        metadata=target.r.client.metadata,
        timeout=3,
    )
    data = b""
    try:
        for msg in resumed:
            data += msg.data
            if b"x\n" in data:
                break
    finally:
        resumed.cancel()
    assert b"first" not in data and b"old line" not in data and data.endswith(b"x\n")


def _cli(target: Target, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "BORESCOPE_TOKEN": target.r.token, "BORESCOPE_ADDR": target.r.address}
    return subprocess.run(
        [sys.executable, "-m", "tui.cli.main", *args, "--container", f"local-{target.pid}"],
        cwd=cwd or ROOT,
        env={**env, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        timeout=30,
        check=False,
    )


def test_cli_ls_escapes_hostile_names(target: Target) -> None:
    """borescope ls shows escape sequences and newlines as visible text, never raw."""
    p = _cli(target, "ls", "/names")
    assert p.returncode == 0, p.stderr
    assert b"\x1b" not in p.stdout and b"\\x1b[31mred" in p.stdout
    assert b"new\\nline" in p.stdout


def test_cli_cat_is_byte_exact_to_a_pipe(target: Target) -> None:
    """borescope cat to a pipe writes the file's exact bytes; errors are one line, exit 1."""
    blob = bytes(range(256)) * 4000
    (target.h.root / "app/bytes.bin").write_bytes(blob)
    p = _cli(target, "cat", "/app/bytes.bin")
    assert p.returncode == 0 and p.stdout == blob
    p = _cli(target, "cat", "/abs_canary")
    assert p.returncode == 1 and p.stderr.count(b"\n") == 1 and b"NOT_FOUND" in p.stderr
    assert b"Traceback" not in p.stderr


def test_cli_tools(target: Target, tmp_path: Path) -> None:
    """hash, find, df, mounts, stat and tail -N print what the container holds."""
    p = _cli(target, "hash", "/etc/hostname")
    assert p.stdout.split()[0].decode() == hashlib.sha256(b"hostile-root\n").hexdigest()
    p = _cli(target, "find", "/", "--name", "bottom.txt", "--max-depth", "250")
    assert p.returncode == 0 and b"bottom.txt" in p.stdout
    assert _cli(target, "df").returncode == 0
    p = _cli(target, "mounts")
    assert b"sensitive: service-account token" in p.stdout
    p = _cli(target, "stat", "/abs_canary", "-o", "json")
    assert p.returncode == 0 and b"SYMLINK" in p.stdout
    (target.h.root / "tmp/lines.log").write_bytes(b"".join(b"line %d\n" % i for i in range(100)))
    p = _cli(target, "tail", "/tmp/lines.log", "-N", "3")
    assert p.stdout == b"line 97\nline 98\nline 99\n"


def test_non_utf8_names_open_by_raw_path(target: Target) -> None:
    """A name that is not UTF-8 is listed with its bytes and reads back through raw_path (API and CLI)."""
    files = target.r.client.files
    listing = files.ListDir(
        files_pb2.ListDirRequest(container=target.sel, path="/names"), **target.kw
    )
    bad = next(e for e in listing.entries if e.raw_name == b"bad-utf8-\xff\xfe")
    assert bad.raw_path == b"/names/bad-utf8-\xff\xfe" and "\ufffd" in bad.path
    resp = files.ReadFile(
        files_pb2.ReadFileRequest(container=target.sel, raw_path=bad.raw_path), **target.kw
    )
    assert resp.data == b"bad-utf8-\xff\xfe" and resp.info.raw_path == bad.raw_path
    p = _cli(target, "cat", os.fsdecode(b"/names/bad-utf8-\xff\xfe"))
    assert p.returncode == 0 and p.stdout == b"bad-utf8-\xff\xfe"


def _first_data(target: Target, **fields: object) -> bytes:
    req = files_pb2.FollowFileRequest(container=target.sel, path="/tmp/digits.log")
    for k, v in fields.items():
        setattr(req, k, v)
    call = target.r.client.files.FollowFile(req, metadata=target.r.client.metadata, timeout=5)
    try:
        return next(m.data for m in call if m.data)
    finally:
        call.cancel()


def test_follow_start_points(target: Target) -> None:
    """FollowFile starts at the first byte, N bytes before the end, or N lines before it."""
    (target.h.root / "tmp/digits.log").write_bytes(b"one\ntwo\nthree\n")
    assert _first_data(target, **{"from": files_pb2.FOLLOW_FROM_START}) == b"one\ntwo\nthree\n"
    assert _first_data(target, tail_bytes=6, **{"from": files_pb2.FOLLOW_FROM_TAIL}) == b"three\n"
    assert (
        _first_data(target, tail_lines=2, **{"from": files_pb2.FOLLOW_FROM_TAIL}) == b"two\nthree\n"
    )


def test_follow_survives_sidecar_shutdown_with_cursor(target: Target) -> None:
    """On graceful shutdown a follow ends UNAVAILABLE with its cursor; resuming loses and repeats nothing."""
    log = target.h.root / "tmp/shutdown.log"
    log.write_bytes(b"")
    r = start_sidecar(Config(local_root=target.pid))
    req = files_pb2.FollowFileRequest(container=target.sel, path="/tmp/shutdown.log")
    setattr(req, "from", files_pb2.FOLLOW_FROM_START)  # no race with the first write
    call = r.client.files.FollowFile(req, metadata=r.client.metadata, timeout=20)
    got = b""
    with open(log, "ab") as f:
        f.write(b"a1\n")
    for msg in call:
        got += msg.data
        if got == b"a1\n":
            break
    stopper = threading.Thread(target=r.sidecar.stop, args=(3,))
    stopper.start()
    with pytest.raises(grpc.RpcError) as ei:
        for msg in call:
            got += msg.data
    stopper.join(10)
    r.client.close()
    assert ei.value.code() == grpc.StatusCode.UNAVAILABLE
    trailers = dict(ei.value.trailing_metadata() or ())
    cursor = json.loads(trailers["borescope-cursor"])["cursor"]
    with open(log, "ab") as f:
        f.write(b"b2\n")
    resumed = target.r.client.files.FollowFile(
        files_pb2.FollowFileRequest(container=target.sel, path="/tmp/shutdown.log", cursor=cursor),
        metadata=target.r.client.metadata,
        timeout=5,
    )
    rest = b""
    try:
        for msg in resumed:
            rest += msg.data
            if rest.endswith(b"b2\n"):
                break
    finally:
        resumed.cancel()
    assert got + rest == b"a1\nb2\n"


@pytest.mark.parametrize("mode", ["openat2", "walk"])
def test_service_confined_with_each_resolver(target: Target, mode: str) -> None:
    """Through gRPC, both resolvers give the container's bytes and refuse every escape."""
    from agent._fs_resolve import resolver_forced

    files = target.r.client.files
    with resolver_forced(mode):
        resp = files.ReadFile(
            files_pb2.ReadFileRequest(container=target.sel, path="/dotdot/etc_link/hostname"),
            **target.kw,
        )
        assert resp.data == b"hostile-root\n" and resp.info.path == "/etc/hostname"
        for path, code in (
            ("/abs_canary", grpc.StatusCode.NOT_FOUND),
            ("/rel_canary", grpc.StatusCode.NOT_FOUND),
            ("/proc_self_root_canary", grpc.StatusCode.INVALID_ARGUMENT),
            ("/chain0", grpc.StatusCode.INVALID_ARGUMENT),
        ):
            with pytest.raises(grpc.RpcError) as ei:
                files.ReadFile(
                    files_pb2.ReadFileRequest(container=target.sel, path=path), **target.kw
                )
            assert ei.value.code() == code, (path, ei.value.details())
