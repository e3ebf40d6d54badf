"""Files service: a container's filesystem, confined to its root.

Thin: pick the container, hand off to ``agent``, convert the result. Every
call notes the container and the path it touched in the audit record (never
the content), and whether the object lay on a sensitive mount.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from typing import Any

import grpc

import agent
from agent import ContainerFs, FsPolicy, errors
from agent import normalize_path as normalize
from agent._common import why_gone
from agent._follow import Follower, Piece, PieceKind, Start, make_cursor
from protos import common_pb2, files_pb2, files_pb2_grpc
from sidecar import audit
from sidecar.config import Config
from sidecar.convert import files as convert
from sidecar.convert.common import epoch, timestamp
from sidecar.deps import Deps
from sidecar.interceptors.limits import CURSOR_KEY
from sidecar.memory import malloc_thresholds

SERVICE_NAMES = [files_pb2.DESCRIPTOR.services_by_name["Files"].full_name]

FOLLOW_READ = 256 << 10  # bytes per follow message: a burst never makes one huge message
FOLLOW_WAIT_S = 0.25  # how often an idle follow re-checks cancellation and shutdown


def policy(config: Config) -> FsPolicy:
    """The agent's file policy from the sidecar's config."""
    return FsPolicy(
        allow_proc_sys=config.allow_proc_sys,
        allow_sensitive_paths=config.allow_sensitive_paths,
        max_read_bytes=config.max_read_bytes,
    )


def _event(p: Piece) -> files_pb2.FileEvent.ValueType:
    """The follower's notices carry a sentence; map it to the contract's enum."""
    text = p.reason.lower()
    if "truncat" in text:
        return files_pb2.FILE_EVENT_TRUNCATED
    if "rotat" in text:
        return files_pb2.FILE_EVENT_ROTATED
    if "recreat" in text or "appeared" in text:
        return files_pb2.FILE_EVENT_RECREATED
    if "remov" in text or "gone" in text or "deleted" in text:
        return files_pb2.FILE_EVENT_REMOVED
    return files_pb2.FILE_EVENT_NONE


def _piece(p: Piece, cursor: str) -> files_pb2.FollowFileResponse:
    if p.kind is PieceKind.DATA:
        return files_pb2.FollowFileResponse(data=p.data, offset=p.offset, cursor=p.cursor)
    if p.kind is PieceKind.GAP:
        gap = common_pb2.Gap(lost=p.lost, reason=p.reason, time=timestamp(time.time()))
        return files_pb2.FollowFileResponse(offset=p.offset, gap=gap, cursor=cursor)
    return files_pb2.FollowFileResponse(offset=p.offset, event=_event(p), cursor=cursor)


def _path(request: Any, default: str = "") -> str:
    """The request's path: ``raw_path`` bytes when given (any bytes but NUL), else ``path``."""
    raw: bytes = request.raw_path
    if raw:
        if b"\0" in raw:
            raise errors.InvalidArgument("path contains a NUL byte")
        return os.fsdecode(raw)
    return str(request.path) or default


def _file_type(number: int) -> agent.FileType:
    """Find's ``type`` as the agent's enum; a number this server does not know is refused."""
    try:
        return agent.FileType(int(number))
    except ValueError:
        known = ", ".join(f"{t.value} ({t.name})" for t in agent.FileType)
        raise errors.InvalidArgument(
            f"type: unknown file type {int(number)}; known types: {known}"
        ) from None


class FilesServicer(files_pb2_grpc.FilesServicer):
    def __init__(self, deps: Deps) -> None:
        self.deps = deps
        self.policy = policy(deps.config)

    def _fs(self, selector: common_pb2.ContainerSelector) -> ContainerFs:
        return self._container_fs(selector)[1]

    def _container_fs(
        self, selector: common_pb2.ContainerSelector
    ) -> tuple[agent.Container, ContainerFs]:
        c = self.deps.pod.container(selector.id)
        audit.note(container=c.id, pid=c.root.pid, start_ticks=c.root.start_ticks)
        if not c.root_accessible:
            raise errors.AccessDenied(
                f"cannot open the root of container {c.name} (pid {c.root.pid}): "
                "needs the same UID or CAP_SYS_PTRACE"
            )
        return c, ContainerFs(c.root_path, c.root.pid, self.policy, self.deps.config.proc_root)

    @staticmethod
    def _note(info: agent.FileInfo) -> None:
        audit.note(path=info.path, sensitive_mount=info.sensitive or None)

    def ListDir(
        self, request: files_pb2.ListDirRequest, context: grpc.ServicerContext
    ) -> files_pb2.ListDirResponse:
        fs = self._fs(request.container)
        path = _path(request, "/")
        audit.note(path=normalize(path))
        li = fs.list_dir(
            path,
            request.page.page_token,
            request.page.page_size,
            request.hide_dotfiles,
        )
        return convert.listing(li)

    def Stat(
        self, request: files_pb2.StatRequest, context: grpc.ServicerContext
    ) -> files_pb2.FileInfo:
        fs = self._fs(request.container)
        path = _path(request)
        audit.note(path=normalize(path))
        return convert.file_info(fs.stat(path, request.follow_symlinks))

    def ReadFile(
        self, request: files_pb2.ReadFileRequest, context: grpc.ServicerContext
    ) -> files_pb2.ReadFileResponse:
        fs = self._fs(request.container)
        path = _path(request)
        audit.note(path=normalize(path), offset=request.offset, length=request.length)
        r = fs.read(path, request.offset, request.length)
        self._note(r.info)
        audit.note(bytes_read=len(r.data))
        return convert.read_result(r)

    def Download(
        self, request: files_pb2.DownloadRequest, context: grpc.ServicerContext
    ) -> Iterator[files_pb2.DownloadChunk]:
        fs = self._fs(request.container)
        path = _path(request)
        audit.note(path=normalize(path), offset=request.offset)
        with fs.download(path, request.offset, request.chunk_size) as dl:
            self._note(dl.info)
            yield files_pb2.DownloadChunk(info=convert.file_info(dl.info), offset=request.offset)
            for off, data in dl.chunks():
                if not context.is_active():
                    return
                yield files_pb2.DownloadChunk(data=data, offset=off)
            done = dl.done()
            audit.note(bytes_sent=done.size - request.offset)
            yield convert.download_done(done)

    def FollowFile(
        self, request: files_pb2.FollowFileRequest, context: grpc.ServicerContext
    ) -> Iterator[files_pb2.FollowFileResponse]:
        c, fs = self._container_fs(request.container)
        path = normalize(_path(request))
        audit.note(path=path)
        follower = self._follower(fs, path, request)
        try:
            while True:
                # Stopping first: server.stop() may already mark the call inactive.
                if self.deps.stopping.is_set():
                    # The special case where a servicer aborts itself: the resume
                    # cursor must travel in the trailers (what the limits interceptor
                    # does after a message; an idle follow may have none to send).
                    _cursor_trailer(context, follower)
                    context.abort(
                        grpc.StatusCode.UNAVAILABLE,
                        f"the sidecar is shutting down; resume with the cursor in {CURSOR_KEY}",
                    )
                if not context.is_active():
                    return
                pieces = follower.read(FOLLOW_READ)
                for i, p in enumerate(pieces):
                    yield _piece(p, follower.cursor if i == len(pieces) - 1 else "")
                if not pieces:
                    # Everything written before the target went is delivered; then end.
                    gone = why_gone(c.root.pid, c.root.start_ticks, self.deps.config.proc_root)
                    if gone:
                        _cursor_trailer(context, follower)
                        raise errors.NotFound(
                            f"container {c.name} ({c.id}) is gone: its root process "
                            f"{c.root.pid} {gone}; the follow of {path} ended after its last "
                            f"byte (resume cursor in trailer {CURSOR_KEY})"
                        )
                    follower.wait(FOLLOW_WAIT_S)
        finally:
            follower.close()

    def _follower(
        self, fs: ContainerFs, path: str, request: files_pb2.FollowFileRequest
    ) -> Follower:
        # The same checks as a read (regular file, sensitive mounts) before following.
        with fs.open_file(path) as (fd, info):
            self._note(info)
            checked = (info.dev, info.ino)
            cursor = request.cursor or None
            if (
                cursor is None
                and getattr(request, "from") == files_pb2.FOLLOW_FROM_TAIL
                and not request.tail_lines
            ):
                cursor = _cursor_before_end(fd, request.tail_bytes)
        gap = request.on_lost_cursor == common_pb2.LOST_CURSOR_GAP
        start = Start.END
        tail_lines = 0
        frm = getattr(request, "from")
        if frm == files_pb2.FOLLOW_FROM_START:
            start = Start.BEGINNING
        elif frm == files_pb2.FOLLOW_FROM_TAIL:
            tail_lines = request.tail_lines
        follower = Follower(
            fs.root,
            path,
            cursor=cursor,
            start=start,
            tail_lines=tail_lines,
            gap_on_lost=gap,
            max_read=FOLLOW_READ,
        )
        # The follower opened the path again: it must be the file just checked (a
        # swap in between could point it at a file the checks would refuse). A
        # resume cursor may legitimately start in a rotated sibling instead.
        if request.cursor == "" and follower.position[:2] != checked:
            follower.close()
            raise errors.FailedPrecondition(f"{path} was replaced while it was opened; retry")
        return follower

    def Find(
        self, request: files_pb2.FindRequest, context: grpc.ServicerContext
    ) -> files_pb2.FindResponse:
        fs = self._fs(request.container)
        path = _path(request, "/")
        audit.note(path=normalize(path))
        r = agent.find(
            fs,
            path,
            glob=request.glob,
            name=request.name,
            min_size=request.min_size if request.HasField("min_size") else None,
            max_size=request.max_size if request.HasField("max_size") else None,
            newer_than=epoch(request.newer_than) if request.HasField("newer_than") else 0.0,
            file_kind=_file_type(request.type),
            max_depth=request.max_depth,
            max_results=request.max_results,
        )
        return convert.find_result(r)

    def HashFile(
        self, request: files_pb2.HashFileRequest, context: grpc.ServicerContext
    ) -> files_pb2.HashFileResponse:
        fs = self._fs(request.container)
        path = _path(request)
        audit.note(path=normalize(path))
        r = fs.hash(path)
        self._note(r.info)
        return files_pb2.HashFileResponse(sha256=r.sha256, size=r.size)

    def ListMounts(
        self, request: files_pb2.ListMountsRequest, context: grpc.ServicerContext
    ) -> files_pb2.ListMountsResponse:
        fs = self._fs(request.container)
        return files_pb2.ListMountsResponse(mounts=[convert.mount(m) for m in fs.mounts()])

    def DiskUsage(
        self, request: files_pb2.DiskUsageRequest, context: grpc.ServicerContext
    ) -> files_pb2.DiskUsageResponse:
        fs = self._fs(request.container)
        path = _path(request)
        if not path:
            return convert.disk_usage(agent.filesystems(fs))
        audit.note(path=normalize(path))
        return convert.disk_usage(agent.du(fs, path, request.max_depth, request.max_entries))


def _cursor_trailer(context: grpc.ServicerContext, follower: Follower) -> None:
    """Put the follow's resume cursor in the trailers (for a stream the servicer ends)."""
    context.set_trailing_metadata(((CURSOR_KEY, json.dumps({"cursor": follower.cursor})),))


def _cursor_before_end(fd: int, tail_bytes: int) -> str:
    """A follow cursor ``tail_bytes`` before the end of the open file."""
    st = os.fstat(fd)
    off = max(0, st.st_size - tail_bytes)
    before = os.pread(fd, min(16, off), off - min(16, off)) if off else b""
    return make_cursor(st.st_dev, st.st_ino, off, before)


def keep_chunk_memory() -> None:
    """Stop glibc from returning ~1 MiB chunk buffers to the kernel after every message.

    Each Download message allocates a ~1 MiB buffer (pread, protobuf
    serialisation). Above glibc's mmap threshold, or once the heap top passes
    the trim threshold, every such buffer is mmapped/trimmed and then faulted
    back in page by page: in a VM that measured ~1.5 ms per MiB, capping a
    download at ~400 MiB/s. Raising both thresholds keeps those buffers in the
    heap (process-wide, a few MiB per busy stream at most).
    """
    malloc_thresholds(16 << 20, 256 << 20)  # not glibc: slower downloads, nothing else


def register(server: grpc.Server, deps: Deps) -> None:
    keep_chunk_memory()
    files_pb2_grpc.add_FilesServicer_to_server(FilesServicer(deps), server)
