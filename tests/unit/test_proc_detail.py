"""One process's details (env, limits, files, threads, cgroup, identity) with real processes."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

import agent
from agent.errors import InvalidArgument, NotFound, ProcessRestarted
from agent.results.proc import ProcessDetail

Child = tuple[subprocess.Popen[str], int, int, Path]

CHILD = """
import os, resource, sys, threading, time
resource.setrlimit(resource.RLIMIT_NOFILE, (123, 456))
f = open(sys.argv[1], "ab")
f.write(b"x" * 1000)
f.flush()
os.lseek(f.fileno(), 10, os.SEEK_SET)
d = os.open("/", os.O_RDONLY | os.O_DIRECTORY)
def named(name):
    with open(f"/proc/self/task/{threading.get_native_id()}/comm", "w") as c:
        c.write(name)
    time.sleep(300)
for n in ("worker-a", "worker-b"):
    threading.Thread(target=named, args=(n,), daemon=True).start()
print(f.fileno(), d, flush=True)
time.sleep(300)
"""


@pytest.fixture
def child(tmp_path: Path) -> Iterator[Child]:
    """A process with a limit set, a file open for append at offset 10, a dir fd and 2 named threads."""
    log = tmp_path / "app.log"
    p = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(log)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "DB_PASSWORD": "canary-detail-91", "api_token": "t0k", "PLAIN": "ok"},
    )
    assert p.stdout is not None
    file_fd, dir_fd = map(int, p.stdout.readline().split())
    time.sleep(0.1)  # the threads name themselves
    yield p, file_fd, dir_fd, log
    p.kill()
    p.wait()


def _detail(pid: int, sections: tuple[str, ...] = (), reveal: bool = False) -> ProcessDetail:
    reader = agent.ProcessReader(agent.Pod())
    red = agent.Redactor(("*PASSWORD*", "*TOKEN*"), reveal=reveal)
    return agent.get_process(reader, agent.ProcessRef(pid, 0), sections, red)


def test_env_names_shown_secret_values_redacted(child: Child) -> None:
    """Secret-looking names (any case) keep their name, lose their value; others are shown."""
    d = _detail(child[0].pid, ("env",))
    env = {e.name: e for e in d.env}
    assert env["DB_PASSWORD"].redacted and env["DB_PASSWORD"].value == ""
    assert env["api_token"].redacted and env["api_token"].value == ""
    assert not env["PLAIN"].redacted and env["PLAIN"].value == "ok"
    assert "canary-detail-91" not in repr(d)


def test_env_revealed_when_configured(child: Child) -> None:
    """With reveal on, secret values come through unredacted."""
    d = _detail(child[0].pid, ("env",), reveal=True)
    env = {e.name: e for e in d.env}
    assert env["DB_PASSWORD"].value == "canary-detail-91" and not env["DB_PASSWORD"].redacted


def test_limits_match_what_the_process_set(child: Child) -> None:
    """/proc/PID/limits is parsed into name, soft, hard, units."""
    d = _detail(child[0].pid, ("limits",))
    limits = {lim.name: lim for lim in d.limits}
    nofile = limits["Max open files"]
    assert (nofile.soft, nofile.hard, nofile.units) == ("123", "456", "files")
    assert limits["Max cpu time"].units == "seconds"
    assert len(limits) == len(Path(f"/proc/{child[0].pid}/limits").read_text().splitlines()) - 1


def test_open_files_with_flags_and_position(child: Child) -> None:
    """The appending file shows its path, O_APPEND and offset 10; the dir fd is type dir."""
    p, file_fd, dir_fd, log = child
    d = _detail(p.pid, ("files",))
    files = {f.fd: f for f in d.open_files}
    assert files[file_fd].path == str(log)
    assert "O_APPEND" in files[file_fd].flags.split("|")
    assert files[file_fd].flags.startswith("O_WRONLY")
    assert files[file_fd].position == 10
    assert files[file_fd].type == "file"
    assert files[dir_fd].type == "dir" and files[dir_fd].path == "/"
    assert set(files) == {int(n) for n in os.listdir(f"/proc/{p.pid}/fd")}


def test_threads_with_names_and_cpu(child: Child) -> None:
    """Every task is listed with its own name; cpu % is measured (not missing)."""
    p = child[0]
    d = _detail(p.pid, ("threads",))
    threads = {t.tid: t for t in d.threads}
    assert set(threads) == {int(n) for n in os.listdir(f"/proc/{p.pid}/task")}
    assert {"worker-a", "worker-b"} <= {t.name for t in threads.values()}
    assert all(t.cpu_percent is not None for t in threads.values())


def test_details_of_a_restarted_pid_are_refused(child: Child) -> None:
    """A ref whose start time does not match is ProcessRestarted, naming the restart."""
    p = child[0]
    reader = agent.ProcessReader(agent.Pod())
    red = agent.Redactor(())
    real = agent.get_process(reader, agent.ProcessRef(p.pid, 0), ("limits",), red).process.ref
    with pytest.raises(ProcessRestarted, match="process restarted"):
        agent.get_process(reader, agent.ProcessRef(p.pid, real.start_ticks + 1), ("env",), red)
    with pytest.raises(InvalidArgument):
        agent.get_process(reader, real, ("colour",), red)
    p.kill()
    p.wait()
    with pytest.raises(NotFound):
        agent.get_process(reader, real, (), red)


def test_pss_and_children(child: Child) -> None:
    """Details carry pss (readable as root) and the direct children."""
    me = _detail(os.getpid(), ("limits",))
    assert me.process.pss is not None and me.process.pss > 0
    assert child[0].pid in me.children


# --- cgroup v1 (this machine) and the parser for v2 -------------------------------------------

V1 = Path("/sys/fs/cgroup")


def _v1_group(controller: str) -> Path:
    path = V1 / controller / f"borescope-test-{uuid.uuid4().hex[:8]}"
    try:
        path.mkdir()
    except OSError as e:
        pytest.skip(f"cannot create a {controller} cgroup here: {e}")
    return path


def _rmdir(path: Path) -> None:
    for _ in range(50):
        try:
            path.rmdir()
            return
        except OSError:
            time.sleep(0.05)


@pytest.mark.skipif(not (V1 / "memory" / "memory.limit_in_bytes").exists(), reason="no cgroup v1")
def test_cgroup_v1_limits_usage_throttling_and_oom_kill() -> None:
    """In a memory+cpu cgroup with a 32 MiB limit and a 20% quota, a process sees
    those limits, its usage, throttling counters, and the OOM kill of a sibling."""
    mem, cpu = _v1_group("memory"), _v1_group("cpu")
    procs = []
    try:
        (mem / "memory.limit_in_bytes").write_text(str(32 << 20))
        (cpu / "cpu.cfs_quota_us").write_text("20000")
        (cpu / "cpu.cfs_period_us").write_text("100000")

        def in_groups(argv: list[str]) -> subprocess.Popen[bytes]:
            def enter() -> None:
                for g in (mem, cpu):
                    (g / "cgroup.procs").write_text(str(os.getpid()))

            return subprocess.Popen(argv, preexec_fn=enter)  # noqa: PLW1509 - test only

        busy = in_groups([sys.executable, "-c", "while True: pass"])
        procs.append(busy)
        hog = in_groups(
            [sys.executable, "-c", "x = bytearray(200 << 20); x[::4096] = b'1' * len(x[::4096])"]
        )
        procs.append(hog)
        hog.wait(timeout=30)
        assert hog.returncode == -9  # killed by the OOM killer
        time.sleep(0.5)  # let the quota throttle the busy loop
        d = _detail(busy.pid, ("cgroup",))
        cg = d.cgroup
        assert cg is not None
        assert cg.version == 1
        assert cg.path.endswith(mem.name)
        assert cg.memory_limit == 32 << 20
        assert cg.memory_usage and 0 < cg.memory_usage <= 32 << 20
        assert cg.memory_peak and cg.memory_peak >= cg.memory_usage
        assert cg.oom_kills == 1
        assert (cg.cpu_quota_us, cg.cpu_period_us) == (20000, 100000)
        assert cg.nr_periods and cg.nr_periods > 0
        assert cg.nr_throttled and cg.nr_throttled > 0
        assert cg.throttled_usec and cg.throttled_usec > 0
        assert {u.field for u in cg.unavailable} >= {"oom_events"}  # v1 has no such counter
    finally:
        for p in procs:
            p.kill()
            p.wait()
        _rmdir(mem)
        _rmdir(cpu)


def test_cgroup_v2_files_are_parsed(tmp_path: Path) -> None:
    """The v2 reader takes memory.max/current/peak/events, cpu.max and cpu.stat from
    the unified mount (a directory laid out like cgroup2, found through mountinfo)."""
    from agent import _cgroup

    group = tmp_path / "kubepods" / "pod1" / "app"
    group.mkdir(parents=True)
    files = {
        "memory.max": "67108864\n",
        "memory.current": "1234567\n",
        "memory.peak": "2345678\n",
        "memory.events": "low 0\nhigh 0\nmax 7\noom 3\noom_kill 2\n",
        "cpu.max": "50000 100000\n",
        "cpu.stat": "usage_usec 10\nnr_periods 40\nnr_throttled 9\nthrottled_usec 5555\n",
        "pids.current": "4\n",
        "pids.max": "max\n",
    }
    for name, body in files.items():
        (group / name).write_text(body)
    mount = _cgroup.Mount("/", str(tmp_path), 2, frozenset())
    cg = _cgroup._v2("/kubepods/pod1/app", mount)
    assert cg.version == 2
    assert (cg.memory_limit, cg.memory_usage, cg.memory_peak) == (67108864, 1234567, 2345678)
    assert (cg.oom_kills, cg.oom_events) == (2, 3)
    assert (cg.cpu_quota_us, cg.cpu_period_us) == (50000, 100000)
    assert (cg.nr_periods, cg.nr_throttled, cg.throttled_usec) == (40, 9, 5555)
    assert (cg.pids_current, cg.pids_max) == (4, None)
    assert cg.unavailable == ()
    (group / "memory.peak").unlink()
    cg = _cgroup._v2("/kubepods/pod1/app", mount)
    assert cg.memory_peak is None
    assert [u.field for u in cg.unavailable] == ["memory_peak"]


def test_details_without_access_name_what_is_missing_and_why() -> None:
    """Read as uid 65534, a root process's env, open files, pss and exe are not returned
    and each is named unavailable with the ptrace hint; limits and threads still come."""
    import json

    from agent._proc_scan import PTRACE_HINT

    target = subprocess.Popen(["sleep", "300"])
    code = (
        "import sys, json; sys.path.insert(0, sys.argv[1]); import agent\n"
        "r = agent.ProcessReader(agent.Pod())\n"
        "d = agent.get_process(r, agent.ProcessRef(int(sys.argv[2]), 0), (), agent.Redactor(()))\n"
        "un = {u.field: u.reason for u in d.unavailable + d.process.unavailable}\n"
        "print(json.dumps({'env': len(d.env), 'files': len(d.open_files), 'pss': d.process.pss,\n"
        "  'limits': len(d.limits), 'threads': len(d.threads), 'un': un}))\n"
    )
    try:
        res = subprocess.run(
            [
                "setpriv",
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                sys.executable,
                "-c",
                code,
                os.getcwd(),
                str(target.pid),
            ],
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
    assert got["env"] == 0 and got["files"] == 0 and got["pss"] is None
    assert got["limits"] > 10 and got["threads"] == 1
    for field in ("env", "open_files", "pss", "exe", "cwd"):
        assert got["un"][field] == PTRACE_HINT, field
