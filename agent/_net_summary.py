"""Socket summaries: counts by state and by remote endpoint.

Made for the two classic incidents: a TIME_WAIT storm (by state) and 900
connections to one database (by remote). Inbound connections (whose local
port is a listening port) are grouped by the client's address alone, with
remote port 0, because their client ports are all different.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from agent.results.net import UNIX, RemoteCount, Socket, SocketSummary

DEFAULT_TOP = 20
MAX_TOP = 1000
_NO_REMOTE = frozenset({"LISTEN", "UNCONN", "CLOSE"})


def summarize(sockets: Iterable[Socket], top: int = 0) -> SocketSummary:
    """Counts over TCP and UDP sockets (unix sockets have no remote endpoint).

    Listeners include unix stream listeners, which are not counted.

    Args:
        sockets: a listing.
        top: how many remotes to return, most connections first (0 = 20).
    """
    top = min(top or DEFAULT_TOP, MAX_TOP)
    items = list(sockets)
    inet = [s for s in items if s.family != UNIX]
    listeners = [s for s in inet if s.state == "LISTEN" or (s.state == "UNCONN" and s.local_port)]
    listen_ports = {(s.protocol, s.local_port) for s in listeners}
    # Unix listeners (php-fpm, a local agent's socket) are listed too, not counted.
    listeners += [s for s in items if s.family == UNIX and s.state == "LISTEN"]
    by_state = Counter(s.state for s in inet)
    remotes: dict[tuple[str, int], Counter[str]] = {}
    for s in inet:
        if s.state in _NO_REMOTE or not s.remote_port:
            continue
        inbound = (s.protocol, s.local_port) in listen_ports
        key = (s.remote_address, 0 if inbound else s.remote_port)
        remotes.setdefault(key, Counter())[s.state] += 1
    ranked = sorted(remotes.items(), key=lambda kv: (-sum(kv[1].values()), kv[0]))
    return SocketSummary(
        by_state=tuple(sorted(by_state.items(), key=lambda kv: (-kv[1], kv[0]))),
        by_remote=tuple(
            RemoteCount(
                addr, port, sum(c.values()), tuple(sorted(c.items(), key=lambda kv: -kv[1]))
            )
            for (addr, port), c in ranked[:top]
        ),
        total=len(inet),
        listeners=tuple(
            sorted(
                listeners, key=lambda s: (s.family == UNIX, s.protocol, s.local_port, s.unix_path)
            )
        ),
    )
