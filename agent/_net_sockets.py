"""Sockets of the pod's network namespace, with their owning processes.

Sockets come from NETLINK_SOCK_DIAG dumps made in the target's network
namespace (``_net_diag``, ``_net_ns``), or, when no such socket can be made,
from ``/proc/<pid>/net/{tcp,tcp6,udp,udp6,unix}`` of a target process: either
way the target's namespace even when the sidecar is elsewhere (tests, local
mode). Owners come from an inode -> (pid, fd) map
built by reading the ``/proc/<pid>/fd`` links of the pod's processes; that
scan is the hot path, so it opens each fd directory once and resolves links
relative to it (``readlink(name, dir_fd=...)`` skips the path walk).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from itertools import islice

from agent._common import PROC, parse_stat, read_bytes
from agent._net_diag import DiagUnavailable, OwnersOf, collect, open_diag_socket, parse
from agent._net_diag import parse_unix as diag_unix
from agent._net_ns import socket_in_netns
from agent._net_proc import (
    TCP_STATES,
    UDP_STATES,
    parse_inet,
    parse_unix,
    read_table,
)
from agent.errors import AccessDenied, NotFound
from agent.results.net import (
    INET,
    INET6,
    TCP,
    UDP,
    UNIX,
    UNIX_STREAM,
    Socket,
    SocketList,
    SocketOwner,
)
from agent.results.pod import ProcessRef, Unavailable

PTRACE_HINT = "needs the same UID or CAP_SYS_PTRACE"

TABLES = (("tcp", INET, TCP), ("tcp6", INET6, TCP), ("udp", INET, UDP), ("udp6", INET6, UDP))
UNIX_TABLE = ("unix", UNIX, UNIX_STREAM)  # one unix_diag dump covers every unix type
KINDS = ("tcp", "tcp6", "udp", "udp6", "unix")
DIAG_WAIT_S = 10.0  # a dump takes milliseconds; past this, use /proc text
#: A listing's bound: memory stays under ~100 MiB however many sockets the pod has.
MAX_SOCKETS = 200_000
# A sock_diag record with its attributes, rounded up (unix ones carry a path).
DIAG_RECORD_BYTES = 256


def _identity(proc: str, pid: int) -> tuple[str, int] | None:
    """(comm, start_ticks) of ``pid``; None when it exited."""
    try:
        comm, fields = parse_stat(read_bytes(f"{proc}/{pid}/stat"))
    except (FileNotFoundError, ProcessLookupError):
        return None
    return comm, int(fields[19])


Table = dict[int, tuple[SocketOwner, ...]]


def _scan_names(  # noqa: PLR0917 (the hot loop: no kwargs packing per call)
    proc: str, pid: int, dfd: int, names: list[bytes], container_of: Mapping[int, str], table: Table
) -> bool:
    """Add the socket fds among ``names`` to ``table``; False when access was denied.

    ``readlink(name, dir_fd=...)`` per entry (no path walk) and the owner
    record built right there: this loop runs once per fd in the pod and is
    most of a listing's cost.
    """
    readlink = os.readlink
    get = table.get
    ref: ProcessRef | None = None
    comm = container_id = ""
    for name in names:
        try:
            link = readlink(name, dir_fd=dfd)
        except (FileNotFoundError, ProcessLookupError):
            continue  # fd closed (or process gone) while we looked
        except PermissionError:
            # The directory opened but links do not resolve: ptrace access
            # is checked per readlink (e.g. the process changed credentials).
            return False
        if link[:8] != b"socket:[":
            continue
        if ref is None:
            ident = _identity(proc, pid)
            if ident is None:
                return True
            comm, ref = ident[0], ProcessRef(pid, ident[1])
            # Looked up only for a pid that owns a socket: a lazy map may
            # refresh itself for a pid it has not seen.
            container_id = container_of.get(pid, "")
        inode = int(link[8:-1])
        owner = SocketOwner(ref, int(name), comm, container_id)
        prev = get(inode)
        table[inode] = (owner,) if prev is None else (*prev, owner)
    return True


def _scan_pid(proc: str, pid: int, container_of: Mapping[int, str], table: Table) -> bool:
    """Add ``pid``'s socket fds to ``table``; False when its fds may not be read.

    (Scanning a big fd table in two threads was tried: on a loaded 2-core
    machine it was as often slower as faster, and a sidecar usually has one
    core or less, so it stays one loop.)
    """
    path = f"{proc}/{pid}/fd".encode()
    try:
        dfd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except PermissionError:
        return False
    except (FileNotFoundError, ProcessLookupError):
        return True  # exited since the pid list was taken: nothing to own
    try:
        try:
            # Bytes names and links skip a str decode per fd (measurably cheaper).
            names = os.listdir(path)
        except PermissionError:
            return False
        except (FileNotFoundError, ProcessLookupError):
            return True
        return _scan_names(proc, pid, dfd, names, container_of, table)
    finally:
        os.close(dfd)


def owner_table(
    pids: Iterable[int], container_of: Mapping[int, str], proc: str = PROC
) -> tuple[Table, list[Unavailable]]:
    """Socket inode -> owners over ``pids``, and what could not be read."""
    table: Table = {}
    denied = [pid for pid in pids if not _scan_pid(proc, pid, container_of, table)]
    unavailable = (
        [Unavailable("owners", f"fds of pids {sorted(denied)} unreadable: {PTRACE_HINT}")]
        if denied
        else []
    )
    return table, unavailable


Raw = dict[str, "list[bytes] | None"]


def _collect_all(netns_pid: int, wanted: set[str], proc: str, diag: bool) -> Raw:
    """sock_diag reply buffers per table; None for a table to read from /proc text."""
    raw: Raw = {name: None for name, _f, _p in (*TABLES, UNIX_TABLE) if name in wanted}
    if not raw or not diag or proc != PROC:
        return raw
    try:
        sock = open_diag_socket(lambda f, t, p: socket_in_netns(netns_pid, f, t, p, proc))
    except (AccessDenied, OSError):
        return raw  # not in the pod's netns and may not enter it: /proc text
    with sock:
        for name, family, protocol in (*TABLES, UNIX_TABLE):
            if name in raw:
                try:
                    bufs, complete = collect(
                        sock, family, protocol, MAX_SOCKETS * DIAG_RECORD_BYTES
                    )
                except (DiagUnavailable, OSError):
                    raw[name] = None  # e.g. udp_diag not loaded: this table from /proc text
                    continue
                raw[name] = bufs
                if not complete:  # the bound was reached: the socket is mid-dump
                    for later in raw:
                        if raw[later] is None and later != name:
                            raw[later] = []
                    break
    return raw


def _collect_in_background(
    netns_pid: int, wanted: set[str], proc: str, diag: bool
) -> Callable[[], Raw]:
    """Start collecting in a thread; return a function that waits for the result.

    The dump is kernel time with the GIL released, so it overlaps the fd
    scan that runs meanwhile on the caller's thread.
    """
    box: list[Raw] = []
    t = threading.Thread(
        target=lambda: box.append(_collect_all(netns_pid, wanted, proc, diag)),
        name="borescope-sockdiag",
        daemon=True,
    )
    t.start()

    def wait() -> Raw:
        t.join(DIAG_WAIT_S)
        if not box:  # stuck or failed: the /proc text is always there
            return {name: None for name, _f, _p in (*TABLES, UNIX_TABLE) if name in wanted}
        return box[0]

    return wait


def _build(netns_pid: int, raw: Raw, owners_of: OwnersOf, proc: str, limit: int) -> list[Socket]:
    out: list[Socket] = []
    for name, family, protocol in TABLES:
        if name not in raw or len(out) >= limit:
            continue
        bufs = raw[name]
        if bufs is not None:
            states = TCP_STATES if protocol == TCP else UDP_STATES
            parse(bufs, family, protocol, states=states, owners_of=owners_of, out=out, limit=limit)
        else:
            lines = read_table(f"{proc}/{netns_pid}/net/{name}")
            out.extend(islice(parse_inet(lines, family, protocol, owners_of), limit - len(out)))
    return out


def list_sockets(
    netns_pid: int,
    pids: Iterable[int] | None,
    container_of: Mapping[int, str],
    *,
    kinds: Iterable[str] = KINDS,
    owners: bool = True,
    proc: str = PROC,
    diag: bool = True,
    limit: int = MAX_SOCKETS,
) -> SocketList:
    """Sockets of ``netns_pid``'s namespace, owners looked up among ``pids``.

    Args:
        netns_pid: a process in the namespace to list.
        pids: processes whose fds name the owners (None = every pid in /proc).
        container_of: pid -> container id, for the owners.
        kinds: which tables to read (``tcp``, ``tcp6``, ``udp``, ``udp6``, ``unix``).
        owners: False skips the fd scan (much cheaper).
        diag: use sock_diag for TCP/UDP when possible (False: /proc text only).
        limit: at most this many sockets (``truncated`` says when it cut).

    Raises:
        NotFound: ``netns_pid`` exited.
        AccessDenied: its /proc/<pid>/net may not be read.
    """
    now = time.time()
    if not os.path.isdir(f"{proc}/{netns_pid}/net"):
        raise NotFound(
            f"process {netns_pid} does not exist (anymore): no network namespace to read"
        )
    wanted = set(kinds)
    table: dict[int, tuple[SocketOwner, ...]] = {}
    unavailable: list[Unavailable] = []
    if owners:
        wait = _collect_in_background(netns_pid, wanted, proc, diag)
        if pids is None:
            pids = [int(n) for n in os.listdir(proc) if n.isdigit()]
        table, unavailable = owner_table(pids, container_of, proc)
        raw = wait()
    else:
        raw = _collect_all(netns_pid, wanted, proc, diag)
    get = table.get

    def owners_of(inode: int) -> tuple[SocketOwner, ...]:
        return get(inode, ())

    try:
        # One past the bound, to tell "exactly the bound" from "cut".
        socks = _build(netns_pid, raw, owners_of, proc, limit + 1)
        if "unix" in wanted and len(socks) <= limit:
            bufs = raw.get("unix")
            if bufs is not None:
                diag_unix(bufs, owners_of=owners_of, out=socks, limit=limit + 1)
            else:
                unix = parse_unix(read_table(f"{proc}/{netns_pid}/net/unix"), owners_of)
                socks.extend(islice(unix, limit + 1 - len(socks)))
    except PermissionError:
        raise AccessDenied(f"cannot read /proc/{netns_pid}/net: {PTRACE_HINT}") from None
    except ProcessLookupError:
        raise NotFound(f"process {netns_pid} exited while its sockets were read") from None
    truncated = len(socks) > limit or any(v == [] for v in raw.values())
    return SocketList(tuple(socks[:limit]), now, tuple(unavailable), truncated)
