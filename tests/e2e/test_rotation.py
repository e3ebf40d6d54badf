"""Following the app's log across rotation, in the real pod.

The app holds its log open and renames it to ``app.log.1`` every 4 KiB (two
writers, the api and the worker, each reopening when they see the rename:
the way real loggers rotate). FollowFile must go on from the old file to the
new one, say so, and deliver each line once, in order, with no silent hole.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from protos import files_pb2
from sidecar.sandbox.harness import Sandbox
from sidecar.sandbox.start import start_sandbox
from tui.client import Client, Target

pytestmark = pytest.mark.sandbox
ROTATE_AT = 4096
FOLLOW_S = 8.0


@pytest.fixture
def pod() -> Iterator[Sandbox]:
    """A pod whose app rotates its log every 4 KiB and logs ~10 lines a second."""
    if os.geteuid() != 0:
        pytest.skip("the sandbox pod needs root")
    sb = start_sandbox("pod", interval=0.1, log_max_bytes=ROTATE_AT)
    try:
        yield sb
    finally:
        sb.close()


def test_follow_file_crosses_a_rename_rotation_without_loss_or_duplicates(pod: Sandbox) -> None:
    """Lines from before and after a rotation arrive once each and in order; the switch is told."""
    with Client(Target(pod.address, pod.token)) as c:
        c.wait_ready(10)
        data = b""
        events = []
        gaps = []
        stream = c.files.FollowFile(
            files_pb2.FollowFileRequest(path=pod.log_file, **{"from": files_pb2.FOLLOW_FROM_START}),
            metadata=c.metadata,
            timeout=FOLLOW_S,
        )
        try:
            for msg in stream:
                data += msg.data
                if msg.event:
                    events.append(msg.event)
                if msg.HasField("gap"):
                    gaps.append(msg.gap)
        except grpc.RpcError as e:
            assert e.code() == grpc.StatusCode.DEADLINE_EXCEEDED, e  # our own stop
    log = Path(pod.app_log_host_path)
    rotated = Path(str(log) + ".1").read_bytes().splitlines()
    current = log.read_bytes().splitlines()
    got = data.splitlines()
    assert files_pb2.FILE_EVENT_ROTATED in events, "the rotation was not reported"
    assert len(got) == len(set(got)), "a line was delivered twice"
    assert set(rotated) & set(got) and set(current) & set(got), "did not cross the rotation"
    # Everything in the current file up to the last line received arrived, in order.
    last = max(i for i, line in enumerate(current) if line in set(got))
    tail = got[len(got) - (last + 1) :]
    if not gaps:
        assert tail == current[: last + 1], "a line of the new file is missing or out of order"
