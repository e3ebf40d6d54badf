"""The agent's process listing, checked against ``ps`` and /proc with real processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

import agent
from agent._proc_scan import PTRACE_HINT, Vanished, open_pid, read_proc, scan

NOBODY = 65534
AS_NOBODY = ("setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups")
THREADED = (
    "import threading,time; "
    "[threading.Thread(target=time.sleep,args=(300,),daemon=True).start() for _ in range(4)]; "
    "time.sleep(300)"
)


def _kill(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        p.kill()
    for p in procs:
        p.wait()


@pytest.fixture
def zoo() -> Iterator[dict[str, subprocess.Popen[bytes]]]:
    """Sleepers as root, one as uid 65534, one with 5 threads, one busy loop."""
    procs = {
        "sleeper": subprocess.Popen(["sleep", "300"]),
        "nobody": subprocess.Popen([*AS_NOBODY, "sleep", "300"]),
        "threaded": subprocess.Popen([sys.executable, "-c", THREADED]),
        "busy": subprocess.Popen([sys.executable, "-c", "while True: pass"]),
    }
    time.sleep(0.5)  # let setpriv exec and the threads start
    yield procs
    _kill(list(procs.values()))


def _ps(pids: list[int]) -> dict[int, tuple[int, str, int, int, str]]:
    out = subprocess.run(
        ["ps", "-ww", "-o", "pid=,ppid=,user=,nlwp=,rss=,args=", "-p", ",".join(map(str, pids))],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rows = {}
    for line in out.splitlines():
        pid, ppid, user, nlwp, rss, args = line.split(None, 5)
        rows[int(pid)] = (int(ppid), user, int(nlwp), int(rss), args)
    return rows


def test_listing_matches_ps(zoo: dict[str, subprocess.Popen[bytes]]) -> None:
    """pid, ppid, user, thread count, rss and cmdline agree with ps for our processes,
    including one running under another UID."""
    reader = agent.ProcessReader(agent.Pod())
    listing = reader.list(want=("fds",))
    by_pid = {p.ref.pid: p for p in listing.processes}
    pids = [p.pid for p in zoo.values()]
    ps = _ps(pids)
    assert set(ps) == set(pids)
    for pid in pids:
        ppid, user, nlwp, rss_kib, args = ps[pid]
        mine = by_pid[pid]
        assert mine.ppid == ppid == os.getpid()
        assert mine.user == user
        assert mine.threads == nlwp
        assert abs(mine.rss // 1024 - rss_kib) <= max(256, rss_kib // 10)  # type: ignore[operator]
        assert " ".join(mine.cmdline) == args
        assert mine.fds == len(os.listdir(f"/proc/{pid}/fd"))
    assert by_pid[zoo["nobody"].pid].uid == NOBODY
    assert by_pid[zoo["nobody"].pid].user == "nobody"
    assert by_pid[zoo["threaded"].pid].threads == 5


def test_listing_covers_every_process_in_proc(zoo: dict[str, subprocess.Popen[bytes]]) -> None:
    """Every user-space pid in /proc before and after the listing appears in it."""
    before = {int(n) for n in os.listdir("/proc") if n.isdigit()}
    listed = {p.ref.pid for p in agent.ProcessReader(agent.Pod()).list(cpu_window_ms=50).processes}
    after = {int(n) for n in os.listdir("/proc") if n.isdigit()}
    stable = before & after
    kernel = set()
    for pid in stable - listed:
        with open(f"/proc/{pid}/stat", "rb") as f:
            flags = int(f.read().rsplit(b")", 1)[1].split()[6])
        if flags & 0x00200000:
            kernel.add(pid)
    assert stable - listed - kernel == set()


def test_cpu_percent_is_a_rate_between_samples(zoo: dict[str, subprocess.Popen[bytes]]) -> None:
    """A busy loop shows a high cpu %, a sleeper about zero: a rate, not since-start."""
    reader = agent.ProcessReader(agent.Pod())
    reader.list(cpu_window_ms=50)
    time.sleep(0.6)
    by_pid = {p.ref.pid: p for p in reader.list().processes}
    busy = by_pid[zoo["busy"].pid].cpu_percent
    idle = by_pid[zoo["sleeper"].pid].cpu_percent
    # The machine is shared (load can be several times the core count): a busy loop
    # still gets a clear share, a sleeper none.
    assert busy is not None and busy > 5
    assert idle is not None and idle < 2


def test_process_that_exits_is_reported_vanished() -> None:
    """Reading a process that exited (and was reaped) after its /proc dir was
    opened raises Vanished, which scan() skips instead of failing."""
    p = subprocess.Popen(["sleep", "300"])
    dfd = open_pid("/proc", p.pid)
    try:
        p.kill()
        p.wait()
        with pytest.raises(Vanished):
            read_proc(dfd, p.pid, ("fds", "exe"))
    finally:
        os.close(dfd)
    assert p.pid not in {r.pid for r in scan("/proc")}


CHURN = """
import os, time
end = time.monotonic() + float(os.environ["CHURN_S"])
n = 0
while time.monotonic() < end:
    if os.fork() == 0:
        time.sleep((n % 7) / 1000)
        os._exit(0)
    n += 1
    while True:  # reap whatever exited
        try:
            if os.waitpid(-1, os.WNOHANG)[0] == 0:
                break
        except ChildProcessError:
            break
print(n)
"""


def test_listing_survives_processes_exiting_mid_listing() -> None:
    """While a child forks hundreds of processes that exit within milliseconds,
    repeated listings never fail and every listed process is self-consistent."""
    churn = subprocess.Popen(
        [sys.executable, "-c", CHURN],
        env={**os.environ, "CHURN_S": "1.5"},
        stdout=subprocess.PIPE,
        text=True,
    )
    reader = agent.ProcessReader(agent.Pod())
    listings = 0
    try:
        while churn.poll() is None:
            listing = reader.list(cpu_window_ms=1)
            listings += 1
            for p in listing.processes:
                assert p.ref.pid > 0 and p.ref.start_ticks > 0 and p.threads >= 1
    finally:
        out, _ = churn.communicate(timeout=10)
    assert listings >= 5
    assert int(out) >= 100  # the churn really happened


def test_unreadable_fields_are_marked_with_the_reason(tmp_path: object) -> None:
    """Read as uid 65534, a root process's exe/cwd/io are unset and named
    unavailable with the ptrace hint, never zero; readable fields still come."""
    target = subprocess.Popen(["sleep", "300"])
    code = (
        "import sys, json; sys.path.insert(0, sys.argv[1]); import agent\n"
        "r = agent.ProcessReader(agent.Pod())\n"
        "p = [p for p in r.list(cpu_window_ms=20).processes if p.ref.pid == int(sys.argv[2])][0]\n"
        "print(json.dumps({'exe': p.exe, 'cwd': p.cwd, 'io': p.io, 'threads': p.threads,\n"
        "  'un': {u.field: u.reason for u in p.unavailable}}))\n"
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
        _kill([target])
    assert res.returncode == 0, res.stderr[-3000:]
    out = res.stdout
    got = json.loads(out)
    assert got["exe"] is None and got["cwd"] is None and got["io"] is None
    assert got["threads"] == 1
    for field in ("exe", "cwd", "io"):
        assert got["un"][field] == PTRACE_HINT


def test_sorting_and_paging() -> None:
    """Sorted by rss descending; pid-ordered pages chain through every process exactly
    once, in order, even while other processes come and go between pages."""
    reader = agent.ProcessReader(agent.Pod())
    full = reader.list(sort="rss", descending=True, cpu_window_ms=10)
    rss = [p.rss or 0 for p in full.processes]
    assert rss == sorted(rss, reverse=True)
    seen: list[int] = []
    token = ""
    churn: list[subprocess.Popen[bytes]] = []
    try:
        while True:
            page = reader.list(sort="pid", page_token=token, limit=len(full.processes) // 4 + 1)
            seen += [p.ref.pid for p in page.processes]
            if not page.next_token:
                break
            token = page.next_token
            churn.append(subprocess.Popen(["sleep", "300"]))  # a new process mid-paging
    finally:
        _kill(churn)
    assert seen == sorted(seen) and len(seen) == len(set(seen)) and len(churn) >= 2
    with pytest.raises(agent.errors.InvalidArgument):
        reader.list(sort="colour")
    with pytest.raises(agent.errors.InvalidArgument):
        reader.list(page_token="not-a-token")
