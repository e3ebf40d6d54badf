"""The target's resolver config: resolv.conf, hosts and nsswitch.conf.

Each file is read CONFINED to the container's root with
``open_regular_in_root`` (a symlinked /etc/resolv.conf pointing outside the
root, or a FIFO in its place, cannot make the sidecar read its own files or
hang). A missing or unreadable file is named in ``unavailable``, never an
empty string that looks like an empty file.
"""

from __future__ import annotations

import os

from agent._fs_resolve import open_regular_in_root
from agent.errors import AccessDenied, InvalidArgument, NotAllowed, NotFound
from agent.results.net import DnsConfig
from agent.results.pod import Unavailable

MAX_FILE_BYTES = 256 << 10  # /etc/hosts can be long, but never this long on purpose
FILES = ("/etc/resolv.conf", "/etc/hosts", "/etc/nsswitch.conf")


def read_confined(root: str, path: str, limit: int = MAX_FILE_BYTES) -> str:
    """Text of ``path`` inside ``root``, at most ``limit`` bytes.

    Raises:
        NotFound, AccessDenied, NotAllowed, InvalidArgument: from the confined open.
    """
    fd = open_regular_in_root(root, path)
    try:
        chunks = []
        left = limit
        while left > 0:
            b = os.read(fd, min(left, 65536))
            if not b:
                break
            chunks.append(b)
            left -= len(b)
    finally:
        os.close(fd)
    return b"".join(chunks).decode("utf-8", "replace")


def parse_resolv_conf(text: str) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    """(nameservers, search domains, options) as glibc reads them (last search wins)."""
    servers: list[str] = []
    search: list[str] = []
    options: list[str] = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].split(";", 1)[0].strip()
        if not line:
            continue
        key, _, rest = line.partition(" ")
        if not rest:
            key, _, rest = line.partition("\t")
        vals = rest.split()
        if key == "nameserver" and vals:
            servers.append(vals[0])
        elif key in ("search", "domain"):
            search = vals  # glibc: the last search/domain line wins
        elif key == "options":
            options.extend(vals)
    return tuple(servers), tuple(search), tuple(options)


def dns_config(root: str) -> DnsConfig:
    """The resolver config of the container whose root is ``root``."""
    texts: dict[str, str] = {}
    unavailable: list[Unavailable] = []
    for path in FILES:
        try:
            texts[path] = read_confined(root, path)
        except (NotFound, AccessDenied, NotAllowed, InvalidArgument) as e:
            texts[path] = ""
            unavailable.append(Unavailable(path, str(e)))
    servers, search, options = parse_resolv_conf(texts["/etc/resolv.conf"])
    return DnsConfig(
        nameservers=servers,
        search=search,
        options=options,
        resolv_conf=texts["/etc/resolv.conf"],
        hosts=texts["/etc/hosts"],
        nsswitch_conf=texts["/etc/nsswitch.conf"],
        unavailable=tuple(unavailable),
    )
