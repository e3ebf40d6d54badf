"""User names come from the container's own /etc/passwd, read confined to its root."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import agent
from agent._proc_users import parse_passwd


def test_parse_passwd_first_name_wins_and_junk_is_skipped() -> None:
    """Well-formed lines map uid -> name; comments, blanks and bad uids are ignored."""
    raw = "root:x:0:0::/root:/bin/sh\n# comment\n\nnonroot:x:65532:65532::/home/nonroot:/sbin/nologin\nalias:x:0:0::/:/\nbad:x:abc:1::/:/\n"
    assert parse_passwd(raw) == {0: "root", 65532: "nonroot"}


def test_listing_and_details_use_the_containers_passwd(tmp_path: Path) -> None:
    """A process in its own mount namespace, whose /etc/passwd names uid 4242 "bs-user"
    (unknown to the sidecar's passwd), is listed and detailed as bs-user."""
    passwd = tmp_path / "passwd"
    passwd.write_text(Path("/etc/passwd").read_text() + "bs-user:x:4242:4242::/:/nonexistent\n")
    assert "bs-user" not in Path("/etc/passwd").read_text()
    script = (
        f"mount --bind {passwd} /etc/passwd && "
        "exec setpriv --reuid=4242 --regid=4242 --clear-groups sleep 300"
    )
    p = subprocess.Popen(["unshare", "--mount", "--propagation", "private", "sh", "-c", script])
    try:
        deadline = time.monotonic() + 10
        while os.stat(f"/proc/{p.pid}").st_uid != 4242:
            assert time.monotonic() < deadline, "the test process did not start"
            time.sleep(0.02)
        reader = agent.ProcessReader(agent.Pod())
        listed = next(x for x in reader.list(cpu_window_ms=10).processes if x.ref.pid == p.pid)
        assert (listed.uid, listed.user) == (4242, "bs-user")
        detail = agent.get_process(reader, listed.ref, ("limits",), agent.Redactor(()))
        assert detail.process.user == "bs-user"
        me = next(x for x in reader.list().processes if x.ref.pid == os.getpid())
        assert me.user == "root"
    finally:
        p.kill()
        p.wait()


def test_a_non_dumpable_process_shows_its_real_uid() -> None:
    """A process that dropped root and made itself non-dumpable (as the sidecar does) has
    its /proc files owned by root; the listing still reports its real uid (from status)."""
    import sys

    if os.geteuid() != 0:
        import pytest

        pytest.skip("needs root to drop to another uid")
    code = (
        "import ctypes, os, time; os.setgid(65534); os.setuid(65534); "
        "ctypes.CDLL(None).prctl(4, 0, 0, 0, 0); print('ready', flush=True); time.sleep(60)"
    )
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout is not None and p.stdout.readline().strip() == "ready"
        assert os.stat(f"/proc/{p.pid}/fd").st_uid == 0  # the kernel hides the owner
        listing = agent.ProcessReader(agent.Pod()).list(cpu_window_ms=50, want=("fds",))
        procs = {x.ref.pid: x for x in listing.processes}
        assert procs[p.pid].uid == 65534
    finally:
        p.kill()
        p.wait()
