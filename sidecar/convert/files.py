"""Agent filesystem results -> files.proto messages."""

from __future__ import annotations

import os

from agent.results import fs
from protos import common_pb2, files_pb2
from sidecar.convert.common import timestamp


def _t(s: str) -> str:
    """A str from the filesystem (surrogate-escaped bytes) as valid UTF-8 for protobuf."""
    return s.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def file_info(i: fs.FileInfo) -> files_pb2.FileInfo:
    return files_pb2.FileInfo(
        name=i.name,
        raw_name=i.raw_name,
        path=_t(i.path),
        raw_path=os.fsencode(i.path),
        type=files_pb2.FileType.ValueType(int(i.type)),
        mode=i.mode,
        uid=i.uid,
        gid=i.gid,
        user=i.user,
        group=i.group,
        size=i.size,
        mtime=timestamp(i.mtime),
        symlink_target=_t(i.symlink_target),
        dev=i.dev,
        ino=i.ino,
        nlink=i.nlink,
        allocated=i.allocated,
        denied_reason=i.denied_reason,
        sensitive=i.sensitive,
    )


def listing(li: fs.Listing) -> files_pb2.ListDirResponse:
    return files_pb2.ListDirResponse(
        dir=file_info(li.dir),
        entries=[file_info(e) for e in li.entries],
        page=common_pb2.PageInfo(
            next_page_token=li.next_token, truncated=li.truncated, total=li.total
        ),
    )


def read_result(r: fs.ReadResult) -> files_pb2.ReadFileResponse:
    return files_pb2.ReadFileResponse(
        data=r.data, offset=r.offset, file_size=r.file_size, eof=r.eof, info=file_info(r.info)
    )


def download_done(d: fs.DownloadDone) -> files_pb2.DownloadChunk:
    return files_pb2.DownloadChunk(
        done=files_pb2.DownloadDone(
            size=d.size, sha256=d.sha256, changed_during_read=d.changed_during_read
        )
    )


def find_result(r: fs.FindResult) -> files_pb2.FindResponse:
    return files_pb2.FindResponse(
        matches=[file_info(m) for m in r.matches],
        truncated=r.truncated,
        scanned=r.scanned,
        errors=[_t(e) for e in r.errors],
    )


def mount(m: fs.Mount) -> files_pb2.Mount:
    return files_pb2.Mount(
        mount_id=m.mount_id,
        parent_id=m.parent_id,
        mount_point=m.mount_point,
        root=m.root,
        fs_type=m.fs_type,
        source=m.source,
        options=m.options,
        super_options=m.super_options,
        sensitive=m.sensitive,
    )


def disk_usage(u: fs.DiskUsage) -> files_pb2.DiskUsageResponse:
    return files_pb2.DiskUsageResponse(
        filesystems=[
            files_pb2.FsUsage(
                mount_point=f.mount_point,
                fs_type=f.fs_type,
                total_bytes=f.total_bytes,
                used_bytes=f.used_bytes,
                free_bytes=f.free_bytes,
                total_inodes=f.total_inodes,
                free_inodes=f.free_inodes,
            )
            for f in u.filesystems
        ],
        dirs=[files_pb2.DirUsage(path=_t(d.path), bytes=d.bytes, files=d.files) for d in u.dirs],
        truncated=u.truncated,
        total_bytes=u.total_bytes,
        errors=[_t(e) for e in u.errors],
    )
