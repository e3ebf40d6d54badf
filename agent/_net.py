"""The Network capability at pod level: which namespace, whose processes.

The readers (``_net_sockets``, ``_net_info``, ``_dns_config``, ``_probe``)
take a pid; this module picks it from the pod (the primary app container's
root process, so the answer is the app's namespace even when the sidecar is
not in it) and maps owners to containers.
"""

from __future__ import annotations

import os
import threading
import time
import weakref
from collections.abc import Iterable

from agent._common import PROC
from agent._net_proc import TCP_STATES, UDP_STATES, UNIX_STATES
from agent._net_sockets import KINDS, PTRACE_HINT, list_sockets
from agent._pod import Pod
from agent.errors import AccessDenied, InvalidArgument
from agent.results.net import Socket, SocketList

CONTAINER_MAP_TTL_S = 10.0
KNOWN_STATES = frozenset(
    {*TCP_STATES.values(), *UDP_STATES.values(), *UNIX_STATES.values(), "LISTEN"}
)


class _Lookup(dict[int, str]):
    """pid -> container id that refreshes itself once when asked about an unknown pid."""

    def __init__(self, owner: _ContainerMap, pod: Pod, mapping: dict[int, str]) -> None:
        super().__init__(mapping)
        self._owner = owner
        self._pod = pod
        self._refreshed = False

    def get(self, pid: int, default: str = "") -> str:  # type: ignore[override]
        found = dict.get(self, pid)
        if found is None and not self._refreshed:
            self._refreshed = True
            self.update(self._owner.refresh(self._pod))
            found = dict.get(self, pid)
        return default if found is None else found


class _ContainerMap:
    """pid -> container id, reused across listings (for at most a TTL).

    Grouping the pod into containers reads three /proc files per process; a
    listing only needs the container of each socket *owner*, which changes
    only when a process starts. The map is refreshed when a pid that owns a
    socket is not in it (see ``_Lookup``) or when it is older than the TTL.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_pod: weakref.WeakKeyDictionary[
            Pod, tuple[float, frozenset[int], dict[int, str]]
        ] = weakref.WeakKeyDictionary()

    def refresh(self, pod: Pod) -> dict[int, str]:
        seen = frozenset(int(n) for n in os.listdir(pod.proc) if n.isdigit())
        mapping = {p: c.id for c in pod.containers() for p in c.pids}
        with self._lock:
            self._by_pod[pod] = (time.monotonic(), seen | frozenset(mapping), mapping)
        return mapping

    def snapshot(self, pod: Pod) -> tuple[_Lookup, list[int]]:
        """(the lookup, pids to scan): the map's pids and any pid started since."""
        current = [int(n) for n in os.listdir(pod.proc) if n.isdigit()]
        with self._lock:
            cached = self._by_pod.get(pod)
        if cached is None or time.monotonic() - cached[0] >= CONTAINER_MAP_TTL_S:
            self.refresh(pod)
            with self._lock:
                cached = self._by_pod[pod]
        _at, seen, mapping = cached
        # Kernel threads were seen at the refresh and are in no container: skipped.
        scan = [p for p in current if p in mapping or p not in seen]
        return _Lookup(self, pod, mapping), scan


_containers = _ContainerMap()


def netns_pid(pod: Pod, container_id: str = "") -> int:
    """A pid in the network namespace to inspect: the container's root process.

    Raises:
        NotFound: no such container (or no app container at all).
    """
    if not container_id and pod.local_root:
        # Local mode: the app is the tree under local_root, even when other
        # mount namespaces on the machine (other sandboxes) started earlier.
        return pod.local_root
    return pod.container(container_id).root.pid


def target_root(pod: Pod, container_id: str = "") -> str:
    """The filesystem root of the container whose resolver config counts.

    Raises:
        NotFound: no such container.
        AccessDenied: its root may not be opened.
    """
    if not container_id and pod.local_root:
        container_id = f"local-{pod.local_root}"  # see netns_pid: local mode's app
    return pod.root_of(container_id)


def is_listener(s: Socket) -> bool:
    """Accepting connections (TCP/unix LISTEN) or receiving on a bound UDP port."""
    return s.state == "LISTEN" or (s.state == "UNCONN" and s.local_port != 0)


def pod_sockets(
    pod: Pod,
    *,
    container_id: str = "",
    pid: int = 0,
    kinds: Iterable[str] = KINDS,
    owners: bool = True,
    listening_only: bool = False,
    states: Iterable[str] = (),
    diag: bool = True,
) -> SocketList:
    """Sockets of the pod's network namespace, optionally narrowed.

    Args:
        pod: the pod.
        container_id: only sockets held by this container's processes ("" = any).
        pid: only sockets held by this process (0 = any).
        kinds: tables: ``tcp``, ``tcp6``, ``udp``, ``udp6``, ``unix``.
        owners: look up owning processes (False is much cheaper; the
            container/pid filters then cannot apply and are refused).
        listening_only: only listeners (TCP/unix LISTEN, bound UDP).
        states: only these states (e.g. ``TIME_WAIT``).

    Raises:
        NotFound: no such container or process.
    """
    container_of, pod_pids = _containers.snapshot(pod)
    wanted_pids: set[int] | None = None
    if pid:
        wanted_pids = {pid}
    elif container_id:
        wanted_pids = set(pod.container(container_id).pids)
    ns_pid = pid or netns_pid(pod, container_id)
    scan = sorted(wanted_pids) if wanted_pids is not None else pod_pids
    listing = list_sockets(
        ns_pid,
        scan,
        container_of,
        kinds=kinds,
        owners=owners or wanted_pids is not None,
        proc=pod.proc,
        diag=diag,
    )
    socks: Iterable[Socket] = listing.sockets
    if wanted_pids is not None:
        socks = (s for s in socks if s.owners)
    if listening_only:
        socks = (s for s in socks if is_listener(s))
    wanted_states = {s.upper().replace("-", "_") for s in states}
    unknown = wanted_states - KNOWN_STATES
    if unknown:
        raise InvalidArgument(
            f"unknown socket state(s) {', '.join(sorted(unknown))}; "
            f"known: {', '.join(sorted(KNOWN_STATES))}"
        )
    if wanted_states:
        socks = (s for s in socks if s.state in wanted_states)
    return SocketList(tuple(socks), listing.sampled_at, listing.unavailable, listing.truncated)


def process_sockets(pid: int, proc: str = PROC) -> tuple[Socket, ...]:
    """Sockets held by ``pid`` (TCP, UDP, unix) with their fds: for process details.

    Raises:
        NotFound: the process exited.
        AccessDenied: its fds or /proc/<pid>/net may not be read.
    """
    listing = list_sockets(pid, [pid], {}, proc=proc)
    if listing.unavailable:
        raise AccessDenied(f"cannot read the fds of process {pid}: {PTRACE_HINT}")
    return tuple(s for s in listing.sockets if s.owners)
