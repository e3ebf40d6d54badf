"""borescope's inspection engine: the API the sidecar calls.

Plain Python in, frozen dataclasses out; no gRPC, no UI. Private modules do
the work (``_pod``, ``_proc``, ``_fs``, ``_net``, ``_logs``, ``_recorder``);
this facade is what callers import. Each concern adds its names below.
"""

from __future__ import annotations

from agent import errors
from agent._access import Access, access
from agent._dns_config import dns_config
from agent._follow import Follower, Piece, PieceKind, make_cursor, parse_cursor
from agent._follow import Start as FollowStart
from agent._fs import ContainerFs, FsPolicy
from agent._fs import normalize as normalize_path
from agent._fs_resolve import open_in_root, open_regular_in_root
from agent._fs_walk import du, filesystems, find
from agent._logs import LogFilter, LogStream, ReaderOptions, open_readers
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
