"""The sandbox pod itself: namespaces, the shell-less root, the app, the capture, cleanup.

These check the pod from the host, against the kernel's own view (/proc,
mountinfo, nsenter), not through borescope: they prove the ground the other
end-to-end tests stand on.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sidecar.sandbox.harness import Sandbox
from sidecar.sandbox.start import start_sandbox

pytestmark = pytest.mark.sandbox

CRI_LINE = re.compile(rb"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z (stdout|stderr) (F|P) (.*)$")


def _ns(pid: int, kind: str) -> int:
    return os.stat(f"/proc/{pid}/ns/{kind}").st_ino


def _status(pid: int, key: str) -> list[str]:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return line.split()[1:]
    raise AssertionError(f"{key} not in /proc/{pid}/status")


def _wait_for(cond, timeout: float = 10.0, what: str = "condition") -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_pod_shares_pid_and_net_namespaces_but_not_mounts(sandbox_pod: Sandbox) -> None:
    """pause, app and sidecar share one PID and network namespace, each with its own mounts."""
    pause = sandbox_pod.pause_host_pid  # type: ignore[attr-defined]
    app, sidecar = sandbox_pod.app_host_pid, sandbox_pod.sidecar_host_pid
    for kind in ("pid", "net"):
        assert _ns(app, kind) == _ns(sidecar, kind) == _ns(pause, kind) != _ns(os.getpid(), kind)
    mounts = {_ns(p, "mnt") for p in (pause, app, sidecar, os.getpid())}
    assert len(mounts) == 4, "pause, app, sidecar and host each need their own mount namespace"
    assert Path(f"/proc/{pause}/comm").read_text().strip() == "pause"
    assert _status(pause, "NSpid")[-1] == "1", "pause must be pid 1 of the pod"
    assert sandbox_pod.app_pid == int(_status(app, "NSpid")[-1]) != app


def test_app_root_has_no_shell_and_no_package_manager(sandbox_pod: Sandbox) -> None:
    """The app's root (as the kernel shows it) has an interpreter but no sh, no pip, no apt."""
    root = Path(f"/proc/{sandbox_pod.app_host_pid}/root")
    assert (root / "usr/local/bin/demo-app").is_file()
    assert (root / "usr/local/lib").is_dir()
    for absent in (
        "bin/sh",
        "bin/bash",
        "usr/bin/sh",
        "bin/busybox",
        "usr/bin/apt",
        "usr/bin/dpkg",
    ):
        assert not (root / absent).exists(), f"/{absent} exists in the app's root"
    stdlib = next((root / "usr/local/lib").glob("python3*"))
    assert (stdlib / "os.py").is_file(), "the stdlib is mounted"
    assert list((stdlib / "site-packages").iterdir()) == [], "site-packages (pip) is hidden"
    assert list((stdlib / "ensurepip").iterdir()) == [], "ensurepip's bundled pip is hidden"
    assert (Path("/proc/self/root") / "bin/sh").exists(), "the host (sidecar) root has a shell"


def test_app_runs_as_non_root_with_secret_env(sandbox_pod: Sandbox) -> None:
    """The app runs as uid 10001 with no capabilities and DB_PASSWORD in its environment."""
    pid = sandbox_pod.app_host_pid
    assert _status(pid, "Uid") == ["10001"] * 4 == [str(sandbox_pod.app_uid)] * 4
    assert int(_status(pid, "CapEff")[0], 16) == 0
    env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    assert f"DB_PASSWORD={sandbox_pod.canary}".encode() in env
    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    assert cmdline[:3] == [b"/usr/local/bin/demo-app", b"-I", b"/app/main.py"]


def test_app_root_is_read_only_except_logs_and_tmp(sandbox_pod: Sandbox) -> None:
    """Like readOnlyRootFilesystem: the app's mounts are ro at / and rw at /var/log/demo, /tmp."""
    info = Path(f"/proc/{sandbox_pod.app_host_pid}/mountinfo").read_text().splitlines()
    opts = {line.split()[4]: line.split()[5].split(",") for line in info}
    assert "ro" in opts["/"]
    assert "rw" in opts["/var/log/demo"] and "rw" in opts["/tmp"]
    stdlib = next(k for k in opts if re.fullmatch(r"/usr/local/lib/python3\.\d+", k))
    assert "ro" in opts[stdlib]


def test_app_has_a_worker_child(sandbox_pod: Sandbox) -> None:
    """The app runs a worker child process, in the app's mount namespace."""
    app = sandbox_pod.app_host_pid
    kids = Path(f"/proc/{app}/task/{app}/children").read_text().split()
    assert kids, "the app has no child process"
    worker = int(kids[0])
    assert b"--worker" in Path(f"/proc/{worker}/cmdline").read_bytes()
    assert _ns(worker, "mnt") == _ns(app, "mnt")


def test_app_logs_json_lines_with_levels(sandbox_pod: Sandbox) -> None:
    """The app's log file is JSON lines with time/level/msg, and warnings and errors show up."""
    path = Path(sandbox_pod.app_log_host_path)

    def levels() -> set[str]:
        lines = path.read_bytes().splitlines()
        return {json.loads(x)["level"] for x in lines if x}

    _wait_for(lambda: {"info", "warning", "error"} <= levels(), 15, "info, warning and error lines")
    first = json.loads(path.read_bytes().splitlines()[0])
    assert list(first)[:3] == ["time", "level", "msg"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", first["time"])


def test_stdout_is_captured_in_cri_format(sandbox_pod: Sandbox) -> None:
    """Every stdout line of the app is in the CRI file as '<RFC3339Nano> stdout F <line>'."""
    app_lines = Path(sandbox_pod.app_log_host_path).read_bytes().splitlines()[:5]
    cri = Path(sandbox_pod.stdio_log).read_bytes().splitlines()
    parsed = [CRI_LINE.match(x) for x in cri]
    assert all(parsed), [x for x, m in zip(cri, parsed, strict=True) if not m][:3]
    stdout = [m.group(3) for m in parsed if m and m.group(1) == b"stdout" and m.group(2) == b"F"]
    for line in app_lines:
        assert line in stdout


def test_http_is_served_inside_the_pod_network(sandbox_pod: Sandbox) -> None:
    """The app's HTTP port answers from inside the pod's network namespace."""
    code = (
        "import urllib.request,sys;"
        f"print(urllib.request.urlopen('http://127.0.0.1:{sandbox_pod.http_port}/healthz',"
        "timeout=5).read().decode())"
    )
    out = subprocess.run(
        ["nsenter", f"--net={sandbox_pod.netns}", sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=20,
        check=True,
    )
    assert json.loads(out.stdout) == {"status": "ok"}


def test_restart_gives_the_app_a_new_pid(fresh_sandbox_pod: Sandbox) -> None:
    """restart_app() stops the app and starts a new one with a new pid that serves again."""
    sb = fresh_sandbox_pod
    old_host, old = sb.app_host_pid, sb.app_pid
    new = sb.restart_app()
    assert new != old and sb.app_host_pid != old_host
    assert not Path(f"/proc/{old_host}").exists()
    assert _status(sb.app_host_pid, "Uid")[0] == "10001"


def _pids_in_netns(inode: int) -> list[int]:
    out = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                if os.stat(f"/proc/{name}/ns/net").st_ino == inode:
                    out.append(int(name))
            except (FileNotFoundError, PermissionError):
                continue
    return out


def test_close_removes_every_process_mount_namespace_and_file() -> None:
    """After close(): no process, no namespace, no mount and no file of the sandbox remains."""
    if os.geteuid() != 0:
        pytest.skip("the sandbox pod needs root")
    sb = start_sandbox("pod", interval=0.25)
    host, port = sb.address.rsplit(":", 1)
    pids = [sb.pause_host_pid, sb.app_host_pid, sb.sidecar_host_pid]  # type: ignore[attr-defined]
    netns = _ns(sb.app_host_pid, "net")
    workdir = sb.workdir
    assert Path(workdir).is_dir()
    sb.close()
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists(), f"process {pid} survived"
    assert _pids_in_netns(netns) == [], "a process still holds the pod's network namespace"
    assert not Path(workdir).exists()
    assert workdir not in Path("/proc/self/mountinfo").read_text()
    with pytest.raises(OSError), socket.create_connection((host, int(port)), timeout=1):
        pass
    sb.close()  # idempotent


def test_a_crashed_app_is_restarted_like_restart_policy_always(fresh_sandbox_pod: Sandbox) -> None:
    """When the app exits on its own (GET /crash, exit code 3) the sandbox starts it again."""
    sb = fresh_sandbox_pod
    notes: list[str] = []
    sb.notice = notes.append
    old = sb.app_host_pid
    code = (
        "import urllib.request,urllib.error\n"
        "try: urllib.request.urlopen('http://127.0.0.1:8080/crash', timeout=5)\n"
        "except urllib.error.HTTPError as e: print(e.code)\n"
    )
    out = subprocess.run(
        ["nsenter", f"--net={sb.netns}", sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=20,
        check=True,
    )
    assert out.stdout.strip() == "500"
    _wait_for(lambda: sb.restarts == 1 and sb.app_host_pid != old, 15, "the app's restart")
    assert sb.last_exit == 3
    assert any("exit code 3" in n for n in notes), notes
    assert _status(sb.app_host_pid, "Uid")[0] == "10001"
    assert not Path(f"/proc/{old}").exists()


def _get_in_pod(sb: Sandbox, path: str) -> str:
    code = (
        "import urllib.request,urllib.error\n"
        f"try: print(urllib.request.urlopen('http://127.0.0.1:8080{path}', timeout=20).status)\n"
        "except urllib.error.HTTPError as e: print(e.code)\n"
        "except OSError as e: print('conn', e)\n"
    )
    return subprocess.run(
        ["nsenter", f"--net={sb.netns}", sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=40,
        check=True,
    ).stdout.strip()


def test_containers_get_their_own_cgroups_and_the_app_a_memory_limit(
    fresh_sandbox_pod: Sandbox,
) -> None:
    """App and sidecar sit in per-container cgroups; past 256 MiB the kernel OOM-kills the app."""
    sb = fresh_sandbox_pod
    cgs = sb.cgroups  # type: ignore[attr-defined]
    if "memory" not in cgs["demo-app"].limits:
        pytest.skip("no writable memory cgroup controller here")
    app_cg = Path(f"/proc/{sb.app_host_pid}/cgroup").read_text()
    assert f"/{Path(sb.workdir).name}/demo-app" in app_cg
    kids = Path(f"/proc/{sb.app_host_pid}/task/{sb.app_host_pid}/children").read_text().split()
    assert Path(f"/proc/{kids[0]}/cgroup").read_text() == app_cg, "the worker is in it too"
    assert (
        f"/{Path(sb.workdir).name}/borescope"
        in Path(f"/proc/{sb.sidecar_host_pid}/cgroup").read_text()
    )
    old = sb.app_host_pid
    _get_in_pod(sb, "/alloc?mb=300")
    _wait_for(lambda: sb.restarts == 1 and sb.app_host_pid != old, 20, "restart after OOM")
    assert sb.last_exit == -signal.SIGKILL, "the OOM killer's signal"
    dirs = [d for cg in cgs.values() for d in cg.dirs]
    sb.close()
    assert not any(Path(d).exists() for d in dirs), "cgroups removed on close"


def test_a_failed_start_says_why_and_leaves_nothing() -> None:
    """A sidecar that refuses its config: SandboxError quoting it, and nothing left behind."""
    if os.geteuid() != 0:
        pytest.skip("the sandbox pod needs root")
    from sidecar.sandbox import stale
    from sidecar.sandbox.harness import SandboxError

    before = set(Path("/tmp").glob(stale.PREFIX + "*"))
    with pytest.raises(SandboxError) as err:
        start_sandbox("pod", settings=["no_such_key=1"])
    assert "no_such_key" in str(err.value)
    after = set(Path("/tmp").glob(stale.PREFIX + "*"))
    mine = [
        p for p in after - before if (p / stale.OWNER).read_text().split()[0] == str(os.getpid())
    ]
    assert mine == [], "the work dir of the failed sandbox is still there"
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                cmd = Path(f"/proc/{name}/cmdline").read_bytes()
            except (FileNotFoundError, PermissionError):
                continue
            assert b"no_such_key" not in cmd, f"process {name} survived: {cmd!r}"


def test_when_the_app_dies_the_rest_of_its_container_dies_with_it() -> None:
    """Like a runtime, the sandbox kills the container's other processes (the worker) at once.

    The worker would notice its parent's death itself only after its 10 s sleep.
    """
    if os.geteuid() != 0:
        pytest.skip("the sandbox pod needs root")
    with start_sandbox("pod", interval=5.0) as sb:
        _kill_app_and_watch_the_worker(sb)


def _kill_app_and_watch_the_worker(sb: Sandbox) -> None:
    app = sb.app_host_pid
    worker = int(Path(f"/proc/{app}/task/{app}/children").read_text().split()[0])
    os.kill(app, signal.SIGKILL)
    _wait_for(lambda: not Path(f"/proc/{worker}").exists(), 1.5, "the worker's end")
    _wait_for(lambda: sb.restarts == 1, 15, "the restart")
    kids = Path(f"/proc/{sb.app_host_pid}/task/{sb.app_host_pid}/children").read_text().split()
    assert kids and int(kids[0]) != worker, "the new app has a new worker"


def test_the_token_and_its_hash_stay_out_of_every_command_line(sandbox_pod: Sandbox) -> None:
    """ps shows neither the token nor its hash: the sidecar reads the hash from a 0600 file."""
    from sidecar.sandbox.harness import hash_token

    secret_bits = (sandbox_pod.token.encode(), hash_token(sandbox_pod.token).encode())
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                cmd = Path(f"/proc/{name}/cmdline").read_bytes()
            except (FileNotFoundError, PermissionError):
                continue
            assert not any(s in cmd for s in secret_bits), f"process {name}: {cmd[:200]!r}"
    hash_file = Path(sandbox_pod.workdir, "token.sha256")
    assert hash_file.stat().st_mode & 0o777 == 0o600
