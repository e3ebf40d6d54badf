"""Containers: grouping by mount namespace (cgroup as fallback), zombies, local mode, restarts."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

import agent
from agent._proc_scan import PTRACE_HINT

AS_NOBODY = ("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups")
ZOMBIE_PARENT = (
    "import os, sys, time\n"
    "pid = os.fork()\n"
    "if pid == 0:\n"
    "    os._exit(0)\n"
    "print(pid, flush=True)\n"
    "time.sleep(300)\n"
)


def _in_new_mnt_ns(argv: list[str], **kw: object) -> subprocess.Popen[str]:
    """Start argv in a fresh mount namespace (unshare execs it: same pid)."""
    return subprocess.Popen(
        ["unshare", "--mount", "--propagation", "private", *argv],
        text=True,
        **kw,  # type: ignore[call-overload]
    )


def _wait_ns(pid: int) -> int:
    mine = os.stat("/proc/self/ns/mnt").st_ino
    for _ in range(100):
        ino = os.stat(f"/proc/{pid}/ns/mnt").st_ino
        if ino != mine:
            return ino
        time.sleep(0.01)
    raise AssertionError("unshare did not create a namespace")


@pytest.fixture
def app() -> Iterator[tuple[subprocess.Popen[str], int]]:
    """A 'container': a process in its own mount namespace with a zombie child."""
    p = _in_new_mnt_ns([sys.executable, "-c", ZOMBIE_PARENT], stdout=subprocess.PIPE)
    assert p.stdout is not None
    zombie = int(p.stdout.readline())
    yield p, zombie
    p.kill()
    p.wait()


def test_mount_namespace_makes_a_container(app: tuple[subprocess.Popen[str], int]) -> None:
    """A process in its own mount namespace is an APP container named by its ns inode,
    rooted at that process, apart from the sidecar's container; its zombie child joins it."""
    p, zombie = app
    ino = _wait_ns(p.pid)
    pod = agent.Pod(names={"python3": "app", "python": "app"})
    containers = pod.containers()
    mine = next(c for c in containers if c.id == f"mnt-{ino}")
    assert mine.kind is agent.ContainerKind.APP
    assert mine.root.pid == p.pid and mine.mnt_ns == ino
    assert set(mine.pids) == {p.pid, zombie}
    assert mine.name == "app"
    assert mine.root_accessible and mine.root_path == f"/proc/{p.pid}/root"
    sidecar = next(c for c in containers if os.getpid() in c.pids)
    assert sidecar.kind is agent.ContainerKind.SIDECAR
    assert p.pid not in sidecar.pids
    assert pod.container(mine.id) == mine or pod.container(mine.id).id == mine.id
    with pytest.raises(agent.errors.NotFound, match="the pod has"):
        pod.container("no-such-container")


def test_restart_of_a_container_is_counted(tmp_path: Path) -> None:
    """When a container's root process is replaced (new namespace, new pid), the
    same-named container reports one restart; an unchanged one reports none."""
    comm = f"bs-{uuid.uuid4().hex[:8]}"  # a comm no other process on this machine has
    (tmp_path / comm).symlink_to(shutil.which("sleep") or "/bin/sleep")
    pod = agent.Pod(names={comm: "worker"})
    first = _in_new_mnt_ns([str(tmp_path / comm), "300"])
    second = None
    try:
        _wait_ns(first.pid)
        before = next(c for c in pod.containers() if c.name == "worker")
        assert before.restarts == 0 and before.root.pid == first.pid
        assert next(c for c in pod.containers() if c.name == "worker").restarts == 0
        first.kill()
        first.wait()
        second = _in_new_mnt_ns([str(tmp_path / comm), "300"])
        _wait_ns(second.pid)
        after = next(c for c in pod.containers() if c.name == "worker")
        assert after.root.pid == second.pid
        # The kernel may hand the new namespace the freed inode number, so the id can
        # repeat: the changed root and the restart count are what tell a restart.
        assert after.restarts == 1
        assert after.root != before.root
    finally:
        for p in (first, second):
            if p is not None:
                p.kill()
                p.wait()


def test_local_mode_makes_the_tree_a_container() -> None:
    """Local mode: the process tree under local_root is the app container although
    it shares the sidecar's mount namespace."""
    p = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import subprocess,time; subprocess.Popen(['sleep','300']); time.sleep(300)",
        ]
    )
    try:
        time.sleep(0.3)
        pod = agent.Pod(local_root=p.pid)
        c = pod.container()
        assert c.id == f"local-{p.pid}" and c.kind is agent.ContainerKind.APP
        assert c.root.pid == p.pid and len(c.pids) == 2
        assert os.getpid() not in c.pids
    finally:
        subprocess.run(["pkill", "-P", str(p.pid)], check=False)
        p.kill()
        p.wait()


def test_unreadable_namespaces_group_by_cgroup_with_a_reason() -> None:
    """Seen by uid 65534, root's processes have unreadable namespace links: they are
    grouped by cgroup instead and the container says why (never silently merged)."""
    target = subprocess.Popen(["sleep", "300"])
    code = (
        "import sys, json; sys.path.insert(0, sys.argv[1]); import agent\n"
        "for c in agent.Pod().containers():\n"
        "    if int(sys.argv[2]) in c.pids:\n"
        "        print(json.dumps({'id': c.id, 'un': [u.reason for u in c.unavailable]}))\n"
    )
    try:
        res = subprocess.run(
            [*AS_NOBODY, sys.executable, "-c", code, os.getcwd(), str(target.pid)],
            capture_output=True,
            text=True,
            check=False,
            cwd="/",
        )
    finally:
        target.kill()
        target.wait()
    assert res.returncode == 0, res.stderr[-2000:]
    got = json.loads(res.stdout)
    assert got["id"].startswith(("cg-", "mnt-unknown"))
    assert any(PTRACE_HINT in r for r in got["un"])
