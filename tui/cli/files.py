"""``borescope ls|stat|cat|tail|cp|find|hash|df|mounts``: the target's files.

Every path is inside the container's root. Names and contents shown on a
terminal go through ``sanitize``; ``cat`` and ``tail`` write raw bytes only
when stdout is not a terminal (a pipe or a file), so ``borescope cat X > f``
is byte-exact while ``borescope cat X`` cannot drive the terminal.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterable
from typing import Any

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from protos import common_pb2, files_pb2
from tui.cli.common import (
    CliError,
    add_connection_args,
    add_output_arg,
    print_json,
    print_json_line,
    print_table,
    to_dict,
    with_client,
)
from tui.client import Client, describe_rpc_error
from tui.sanitize import sanitize, sanitize_bytes
from tui.transfer import TerminalProgress, TransferError, download
from tui.widgets.file_format import (
    TYPE_BY_LETTER,
    display_name,
    human_size,
    mode_string,
    owner,
    parse_age,
    parse_size,
    path_fields,
    short_time,
)

MAX_LS_PAGES = 100  # 100 pages x 5000 = 500k entries at most per ls
TAIL_WINDOW = 256 << 10
#: Errors where nothing was transferred, so there is nothing to resume.
_REFUSALS = (
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.PERMISSION_DENIED,
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.UNAUTHENTICATED,
)


def _sel(args: argparse.Namespace) -> common_pb2.ContainerSelector:
    return common_pb2.ContainerSelector(id=args.container or "")


def _kw(args: argparse.Namespace, client: Client) -> dict[str, Any]:
    return {"metadata": client.metadata, "timeout": args.timeout}


def _out(data: bytes) -> None:
    """Raw bytes to a pipe; sanitised text to a terminal."""
    if sys.stdout.isatty():
        sys.stdout.write(sanitize_bytes(data, keep_newlines=True))
        sys.stdout.flush()
    else:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()


def _note(text: str) -> None:
    print(f"borescope: {sanitize(text)}", file=sys.stderr)


def _rows(entries: Iterable[files_pb2.FileInfo], human: bool) -> list[list[str]]:
    rows = []
    for e in entries:
        user, group = owner(e)
        size = human_size(e.size) if human else str(e.size)
        when = short_time(e.mtime.seconds)
        rows.append([mode_string(e), user, group, size, when, display_name(e)])
    return rows


@with_client
def cmd_ls(args: argparse.Namespace, client: Client) -> int:
    entries: list[files_pb2.FileInfo] = []
    token = ""
    for _ in range(MAX_LS_PAGES):
        req = files_pb2.ListDirRequest(
            container=_sel(args),
            **path_fields(args.path),
            page=common_pb2.PageRequest(page_size=5000, page_token=token),
            hide_dotfiles=not args.all,
        )
        resp = client.files.ListDir(req, **_kw(args, client))
        entries += resp.entries
        token = resp.page.next_page_token
        if not token:
            break
    if args.output == "json":
        print_json(list(entries) if entries else [])
    else:
        print_table(
            ["MODE", "USER", "GROUP", "SIZE", "MODIFIED", "NAME"],
            _rows(entries, args.human),
            right=(3,),
        )
    if token or resp.page.truncated:
        _note(f"listing truncated at {len(entries)} entries (server bound)")
    return 0


@with_client
def cmd_stat(args: argparse.Namespace, client: Client) -> int:
    req = files_pb2.StatRequest(
        container=_sel(args), **path_fields(args.path), follow_symlinks=args.follow
    )
    info = client.files.Stat(req, **_kw(args, client))
    if args.output == "json":
        print_json(info)
        return 0
    user, group = owner(info)
    rows = [
        ("path", sanitize(info.path)),
        ("type", files_pb2.FileType.Name(info.type).removeprefix("FILE_TYPE_").lower()),
        ("mode", f"{mode_string(info)} ({info.mode:04o})"),
        ("owner", f"{user} ({info.uid}) / {group} ({info.gid})"),
        ("size", f"{info.size} ({human_size(info.size)}), allocated {human_size(info.allocated)}"),
        ("modified", time.strftime("%Y-%m-%d %H:%M:%S %z", time.localtime(info.mtime.seconds))),
        ("device/inode", f"{info.dev}/{info.ino}, {info.nlink} link(s)"),
    ]
    if info.symlink_target:
        rows.append(("symlink to", sanitize(info.symlink_target)))
    if info.denied_reason:
        rows.append(("reads refused", sanitize(info.denied_reason)))
    print_table(["FIELD", "VALUE"], rows)
    return 0


@with_client
def cmd_cat(args: argparse.Namespace, client: Client) -> int:
    if args.length:
        req = files_pb2.ReadFileRequest(
            container=_sel(args), **path_fields(args.path), offset=args.offset, length=args.length
        )
        _out(client.files.ReadFile(req, **_kw(args, client)).data)
        return 0
    # The whole file, streamed: bounded chunks, never held in memory.
    dreq = files_pb2.DownloadRequest(
        container=_sel(args), **path_fields(args.path), offset=args.offset
    )
    for msg in client.files.Download(dreq, metadata=client.metadata):
        if msg.data:
            _out(msg.data)
        if msg.HasField("done") and msg.done.changed_during_read:
            _note(f"{args.path} changed while it was read")
    return 0


@with_client
def cmd_tail(args: argparse.Namespace, client: Client) -> int:
    if not args.follow:
        info = client.files.Stat(
            files_pb2.StatRequest(
                container=_sel(args), **path_fields(args.path), follow_symlinks=True
            ),
            **_kw(args, client),
        )
        start = max(0, info.size - TAIL_WINDOW)
        req = files_pb2.ReadFileRequest(
            container=_sel(args), **path_fields(args.path), offset=start, length=TAIL_WINDOW
        )
        data = client.files.ReadFile(req, **_kw(args, client)).data
        lines = data.splitlines(keepends=True)
        _out(b"".join(lines[-args.lines :] if args.lines else []))
        return 0
    freq = files_pb2.FollowFileRequest(
        container=_sel(args),
        **path_fields(args.path),
        cursor=args.cursor or "",
        tail_lines=args.lines,
        on_lost_cursor=common_pb2.LOST_CURSOR_GAP,
    )
    # "from" is a Python keyword: set it by name.
    setattr(
        freq, "from", files_pb2.FOLLOW_FROM_START if args.from_start else files_pb2.FOLLOW_FROM_TAIL
    )
    for msg in client.files.FollowFile(freq, metadata=client.metadata):
        if msg.HasField("gap"):
            _note(f"gap: {msg.gap.reason} ({msg.gap.lost or 'unknown'} bytes lost)")
        if msg.event:
            _note(f"{files_pb2.FileEvent.Name(msg.event).removeprefix('FILE_EVENT_').lower()}")
        if msg.data:
            if args.output == "json":
                print_json_line(
                    {
                        "offset": msg.offset,
                        "cursor": msg.cursor,
                        "data": msg.data.decode("utf-8", "replace"),
                    }
                )
            else:
                _out(msg.data)
    return 0


@with_client
def cmd_cp(args: argparse.Namespace, client: Client) -> int:
    show = sys.stderr.isatty() and not args.quiet
    progress = TerminalProgress(sys.stderr) if show else None
    try:
        res = download(
            client,
            args.remote,
            args.dest,
            container=args.container or "",
            local_name=args.as_name,
            force=args.force,
            resume=not args.no_resume,
            progress=progress,
        )
    except TransferError as e:
        raise CliError(str(e)) from None
    except grpc.RpcError as e:
        part = "" if e.code() in _REFUSALS else "; the partial download is kept: rerun to resume"
        raise CliError(describe_rpc_error(e) + part) from None
    except KeyboardInterrupt:
        _note("interrupted; the partial download is kept, run the same command to resume")
        raise
    if show:
        sys.stderr.write("\n")
    if args.output == "json":
        print_json(
            {
                "path": res.path,
                "size": res.size,
                "sha256": res.sha256,
                "resumed_from": res.resumed_from,
            }
        )
    else:
        resumed = f" (resumed at {res.resumed_from})" if res.resumed_from else ""
        print(f"{sanitize(res.path)}  {res.size} bytes  sha256 {res.sha256}{resumed}")
    if res.changed_during_read:
        _note("the file changed while it was read: the copy is what was read, and verified")
    return 0


@with_client
def cmd_find(args: argparse.Namespace, client: Client) -> int:
    req = files_pb2.FindRequest(
        container=_sel(args),
        **path_fields(args.path),
        glob=args.glob or "",
        name=args.name or "",
        max_depth=args.max_depth,
        max_results=args.max_results,
    )
    try:
        if args.min_size:
            req.min_size = parse_size(args.min_size)
        if args.max_size:
            req.max_size = parse_size(args.max_size)
        if args.newer:
            ts = Timestamp()
            ts.FromNanoseconds(int((time.time() - parse_age(args.newer)) * 1e9))
            req.newer_than.CopyFrom(ts)
    except ValueError as e:
        raise CliError(str(e), 2) from None
    if args.type:
        req.type = TYPE_BY_LETTER[args.type]
    resp = client.files.Find(req, **_kw(args, client))
    if args.output == "json":
        print_json(resp)
        return 0
    print_table(
        ["MODE", "USER", "GROUP", "SIZE", "MODIFIED", "PATH"],
        [
            [*r[:5], sanitize(m.path)]
            for r, m in zip(_rows(resp.matches, True), resp.matches, strict=True)
        ],
        right=(3,),
    )
    for err in resp.errors:
        _note(err)
    if resp.truncated:
        _note(
            f"search stopped at a bound after {resp.scanned} entries (raise --max-depth / --max-results)"
        )
    return 0


@with_client
def cmd_hash(args: argparse.Namespace, client: Client) -> int:
    resp = client.files.HashFile(
        files_pb2.HashFileRequest(container=_sel(args), **path_fields(args.path)),
        **_kw(args, client),
    )
    if args.output == "json":
        print_json({"path": args.path, "sha256": resp.sha256, "size": resp.size})
    else:
        print(f"{resp.sha256}  {sanitize(args.path)}")
    return 0


@with_client
def cmd_df(args: argparse.Namespace, client: Client) -> int:
    req = files_pb2.DiskUsageRequest(
        container=_sel(args),
        **(path_fields(args.path) if args.path else {}),
        max_depth=args.max_depth,
        max_entries=args.max_entries,
    )
    resp = client.files.DiskUsage(req, **_kw(args, client))
    if args.output == "json":
        print_json(resp)
        return 0
    if args.path:
        print_table(
            ["SIZE", "FILES", "PATH"],
            [[human_size(d.bytes), d.files, d.path] for d in resp.dirs],
            right=(0, 1),
        )
    else:
        rows = [
            [
                f.mount_point,
                f.fs_type,
                human_size(f.total_bytes),
                human_size(f.used_bytes),
                human_size(f.free_bytes),
                f"{100 * f.used_bytes / f.total_bytes:.0f}%" if f.total_bytes else "-",
            ]
            for f in resp.filesystems
        ]
        print_table(["MOUNT", "TYPE", "SIZE", "USED", "AVAIL", "USE%"], rows, right=(2, 3, 4, 5))
    for err in resp.errors:
        _note(err)
    if resp.truncated:
        _note("du stopped at its entry bound: sizes are lower bounds (raise --max-entries)")
    return 0


@with_client
def cmd_mounts(args: argparse.Namespace, client: Client) -> int:
    resp = client.files.ListMounts(
        files_pb2.ListMountsRequest(container=_sel(args)), **_kw(args, client)
    )
    if args.output == "json":
        print_json([to_dict(m) for m in resp.mounts])
        return 0
    rows = [
        [m.mount_point, m.fs_type, m.source, m.options, m.sensitive and f"sensitive: {m.sensitive}"]
        for m in resp.mounts
    ]
    print_table(["MOUNT", "TYPE", "SOURCE", "OPTIONS", "NOTE"], rows)
    return 0


def _command(sub: argparse._SubParsersAction, name: str, help_text: str) -> argparse.ArgumentParser:  # type: ignore[type-arg]
    p: argparse.ArgumentParser = sub.add_parser(name, help=help_text, description=help_text)
    add_connection_args(p)
    add_output_arg(p)
    p.add_argument("-c", "--container", help="container id or name (default: the app container)")
    return p


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ls, stat, cat, tail, cp, find, hash, df and mounts."""
    p = _command(sub, "ls", "list a directory in the container")
    p.add_argument("path", nargs="?", default="/")
    p.add_argument("-a", "--all", action="store_true", help="include dotfiles")
    p.add_argument("-H", "--human", action="store_true", help="sizes like 1.5K")
    p.set_defaults(func=cmd_ls)

    p = _command(sub, "stat", "show a file's metadata")
    p.add_argument("path")
    p.add_argument(
        "-L", "--follow", action="store_true", help="follow a final symlink (inside the root)"
    )
    p.set_defaults(func=cmd_stat)

    p = _command(sub, "cat", "print a file (raw to a pipe, escaped on a terminal)")
    p.add_argument("path")
    p.add_argument("--offset", type=int, default=0, help="start at this byte")
    p.add_argument(
        "--length", type=int, default=0, help="at most this many bytes (bounded by the sidecar)"
    )
    p.set_defaults(func=cmd_cat)

    p = _command(sub, "tail", "print the end of a file; -f follows it across rotation")
    p.add_argument("path")
    p.add_argument("--lines", "-N", type=int, default=10, help="lines before the end (default 10)")
    p.add_argument("-f", "--follow", action="store_true", help="keep following (Ctrl-C stops)")
    p.add_argument("--from-start", action="store_true", help="with -f: from the first byte")
    p.add_argument("--cursor", help="with -f: resume after this cursor")
    p.set_defaults(func=cmd_tail)

    _register_tools(sub)


def _register_tools(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = _command(sub, "cp", "download a file safely (verified, resumable, never outside DEST)")
    p.add_argument("remote", help="path in the container")
    p.add_argument("dest", nargs="?", default=".", help="local directory (default: .)")
    p.add_argument("--as", dest="as_name", help="local file name instead of the remote basename")
    p.add_argument("--force", action="store_true", help="replace an existing local file")
    p.add_argument("--no-resume", action="store_true", help="discard a partial download")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_cp)

    p = _command(sub, "find", "search the container's tree (bounded)")
    p.add_argument("path", nargs="?", default="/")
    p.add_argument("--name", help="exact name")
    p.add_argument("--glob", help="shell pattern on the name, e.g. '*.log'")
    p.add_argument(
        "--type",
        choices=sorted(TYPE_BY_LETTER),
        help="f/- file, d dir, l link, p fifo, s socket, c/b device",
    )
    p.add_argument("--min-size", help="e.g. 10M")
    p.add_argument("--max-size", help="e.g. 1G")
    p.add_argument("--newer", help="modified within, e.g. 10m, 2h, 1d")
    p.add_argument("--max-depth", type=int, default=0, help="default 16")
    p.add_argument("--max-results", type=int, default=0, help="default 1000")
    p.set_defaults(func=cmd_find)

    p = _command(sub, "hash", "sha256 of a file")
    p.add_argument("path")
    p.set_defaults(func=cmd_hash)

    p = _command(sub, "df", "free space per mount; with PATH, du of that directory")
    p.add_argument("path", nargs="?", default="")
    p.add_argument("--max-depth", type=int, default=0)
    p.add_argument(
        "--max-entries", type=int, default=0, help="entries scanned at most (default 200000)"
    )
    p.set_defaults(func=cmd_df)

    p = _command(sub, "mounts", "the container's mounts (sensitive ones flagged)")
    p.set_defaults(func=cmd_mounts)
