"""borescope's inspection engine: the API the sidecar calls.

Plain Python in, frozen dataclasses out; no gRPC, no UI. Private modules do
the work (``_pod``, ``_proc``, ``_fs``, ``_net``, ``_logs``, ``_recorder``);
this facade is what callers import. Each concern adds its names below.

The facade is lazy (PEP 562): ``import agent`` loads nothing but this file and
``agent.errors``; ``agent.X`` imports X's module on first use. The sidecar so
pays, at start-up, only for what its idle work needs (the pod view, the
recorder), and e.g. the socket readers (a 3 MiB port table) or the probers
(http.client, email) load on the first RPC that uses them. Type checkers see
the eager imports below.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from agent import errors

if TYPE_CHECKING:
    from agent._access import Access, access
    from agent._dns_config import dns_config
    from agent._follow import Follower, Piece, PieceKind, make_cursor, parse_cursor
    from agent._follow import Start as FollowStart
    from agent._fs import ContainerFs, FsPolicy
    from agent._fs import normalize as normalize_path
    from agent._fs_resolve import open_in_root, open_regular_in_root
    from agent._fs_walk import du, filesystems, find
    from agent._logs import LogFilter, ReaderOptions, open_readers
    from agent._logs_stream import LogStream
    from agent._net import is_listener, netns_pid, pod_sockets, process_sockets, target_root
    from agent._net_info import counters as net_counters
    from agent._net_info import interfaces as net_interfaces
    from agent._net_info import routes as net_routes
    from agent._net_summary import summarize as summarize_sockets
    from agent._pod import Pod
    from agent._probe import Prober
    from agent._proc import ProcessReader
    from agent._proc_detail import Redactor
    from agent._proc_get import SECTIONS, Sampler, get_process
    from agent._recorder import Recorder, Thresholds
    from agent._recorder_log import event_cursor, resume_point
    from agent._signal import check_allowed, parse_signal
    from agent._signal import send as send_signal
    from agent._sources import RECORDER_SOURCE_ID, pick_container
    from agent._sources import discover as discover_sources
    from agent.results.fs import FileInfo, FileType
    from agent.results.pod import Container, ContainerKind, ProcessRef, Unavailable

__version__ = "0.1.0"

#: Public name -> (module, name in that module), imported on first access.
_LAZY: dict[str, tuple[str, str]] = {
    "Access": ("agent._access", "Access"),
    "access": ("agent._access", "access"),
    "dns_config": ("agent._dns_config", "dns_config"),
    "Follower": ("agent._follow", "Follower"),
    "Piece": ("agent._follow", "Piece"),
    "PieceKind": ("agent._follow", "PieceKind"),
    "make_cursor": ("agent._follow", "make_cursor"),
    "parse_cursor": ("agent._follow", "parse_cursor"),
    "FollowStart": ("agent._follow", "Start"),
    "ContainerFs": ("agent._fs", "ContainerFs"),
    "FsPolicy": ("agent._fs", "FsPolicy"),
    "normalize_path": ("agent._fs", "normalize"),
    "open_in_root": ("agent._fs_resolve", "open_in_root"),
    "open_regular_in_root": ("agent._fs_resolve", "open_regular_in_root"),
    "du": ("agent._fs_walk", "du"),
    "filesystems": ("agent._fs_walk", "filesystems"),
    "find": ("agent._fs_walk", "find"),
    "LogFilter": ("agent._logs", "LogFilter"),
    "LogStream": ("agent._logs_stream", "LogStream"),
    "ReaderOptions": ("agent._logs", "ReaderOptions"),
    "open_readers": ("agent._logs", "open_readers"),
    "is_listener": ("agent._net", "is_listener"),
    "netns_pid": ("agent._net", "netns_pid"),
    "pod_sockets": ("agent._net", "pod_sockets"),
    "process_sockets": ("agent._net", "process_sockets"),
    "target_root": ("agent._net", "target_root"),
    "net_counters": ("agent._net_info", "counters"),
    "net_interfaces": ("agent._net_info", "interfaces"),
    "net_routes": ("agent._net_info", "routes"),
    "summarize_sockets": ("agent._net_summary", "summarize"),
    "Pod": ("agent._pod", "Pod"),
    "Prober": ("agent._probe", "Prober"),
    "ProcessReader": ("agent._proc", "ProcessReader"),
    "Redactor": ("agent._proc_detail", "Redactor"),
    "SECTIONS": ("agent._proc_get", "SECTIONS"),
    "Sampler": ("agent._proc_get", "Sampler"),
    "get_process": ("agent._proc_get", "get_process"),
    "Recorder": ("agent._recorder", "Recorder"),
    "Thresholds": ("agent._recorder", "Thresholds"),
    "event_cursor": ("agent._recorder_log", "event_cursor"),
    "resume_point": ("agent._recorder_log", "resume_point"),
    "check_allowed": ("agent._signal", "check_allowed"),
    "parse_signal": ("agent._signal", "parse_signal"),
    "send_signal": ("agent._signal", "send"),
    "RECORDER_SOURCE_ID": ("agent._sources", "RECORDER_SOURCE_ID"),
    "pick_container": ("agent._sources", "pick_container"),
    "discover_sources": ("agent._sources", "discover"),
    "FileInfo": ("agent.results.fs", "FileInfo"),
    "FileType": ("agent.results.fs", "FileType"),
    "Container": ("agent.results.pod", "Container"),
    "ContainerKind": ("agent.results.pod", "ContainerKind"),
    "ProcessRef": ("agent.results.pod", "ProcessRef"),
    "Unavailable": ("agent.results.pod", "Unavailable"),
}


def __getattr__(name: str) -> Any:
    """Import the module that defines ``name`` and cache the name here."""
    try:
        module, attr = _LAZY[name]
    except KeyError:
        # Also how ``from agent import _submodule`` falls back to importing it.
        raise AttributeError(f"module 'agent' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module), attr)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


__all__ = [
    "RECORDER_SOURCE_ID",
    "SECTIONS",
    "Access",
    "Container",
    "ContainerFs",
    "ContainerKind",
    "FileInfo",
    "FileType",
    "FollowStart",
    "Follower",
    "FsPolicy",
    "LogFilter",
    "LogStream",
    "Piece",
    "PieceKind",
    "Pod",
    "Prober",
    "ProcessReader",
    "ProcessRef",
    "ReaderOptions",
    "Recorder",
    "Redactor",
    "Sampler",
    "Thresholds",
    "Unavailable",
    "access",
    "check_allowed",
    "discover_sources",
    "dns_config",
    "du",
    "errors",
    "event_cursor",
    "filesystems",
    "find",
    "get_process",
    "is_listener",
    "make_cursor",
    "net_counters",
    "net_interfaces",
    "net_routes",
    "netns_pid",
    "normalize_path",
    "open_in_root",
    "open_readers",
    "open_regular_in_root",
    "parse_cursor",
    "parse_signal",
    "pick_container",
    "pod_sockets",
    "process_sockets",
    "resume_point",
    "send_signal",
    "summarize_sockets",
    "target_root",
]
