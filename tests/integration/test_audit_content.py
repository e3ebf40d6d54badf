"""No content in audit records, proven with canaries through the real services.

A file, a log line and an environment value each carry a canary; the client
really receives them (so the test would notice if it read nothing), and the
audit log never contains them. The records do carry the resolved path.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from protos import common_pb2, files_pb2, logs_pb2, processes_pb2
from sidecar.config import Config
from tests.conftest import Running, start_sidecar

FILE_CANARY = "canary-file-content-3b9d"
LOG_CANARY = "canary-log-line-c51e"
ENV_CANARY = "canary-env-audit-9f07"


@pytest.fixture
def canary_pod(tmp_path: Path) -> Iterator[tuple[Running, Path, Path, subprocess.Popen[bytes]]]:
    """A local-mode sidecar with audit to a file, an app holding a canary in its env and a
    log file with a canary line, plus a canary file in the app's root."""
    data = tmp_path / "secret.txt"
    data.write_text(f"line one\n{FILE_CANARY}\n")
    log = tmp_path / "app.log"
    log.write_text(f'{{"level":"info","msg":"{LOG_CANARY}"}}\n')
    app = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(300)"],
        env={**os.environ, "API_TOKEN": ENV_CANARY},
    )
    audit_file = tmp_path / "audit.jsonl"
    r = start_sidecar(
        Config(
            local_root=app.pid,
            log_sources=(str(log),),
            reveal_secrets=True,  # the env value really goes to the client
            audit_file=str(audit_file),
        )
    )
    yield r, data, audit_file, app
    r.client.close()
    r.sidecar.stop(0)
    app.kill()
    app.wait()


def test_no_canary_reaches_the_audit_log(
    canary_pod: tuple[Running, Path, Path, subprocess.Popen[bytes]],
) -> None:
    """ReadFile, Download, FollowFile, FollowLogs and GetProcess deliver their canaries to
    the client; the audit log has one record per call, with the resolved path, and none
    of the canaries."""
    r, data, audit_file, app = canary_pod
    c, md = r.client, r.client.metadata
    sel = common_pb2.ContainerSelector()
    got = b""
    got += c.files.ReadFile(
        files_pb2.ReadFileRequest(container=sel, path=str(data)), metadata=md, timeout=10
    ).data
    for chunk in c.files.Download(
        files_pb2.DownloadRequest(container=sel, path=str(data)), metadata=md, timeout=10
    ):
        got += chunk.data
    follow = c.files.FollowFile(
        files_pb2.FollowFileRequest(container=sel, path=str(data), **{"from": 1}),
        metadata=md,
        timeout=10,
    )
    for msg in follow:
        got += msg.data
        if FILE_CANARY.encode() in msg.data:
            follow.cancel()
            break
    assert got.count(FILE_CANARY.encode()) == 3

    sources = c.logs.ListSources(logs_pb2.ListSourcesRequest(), metadata=md, timeout=10)
    ids = [s.id for s in sources.sources if s.path.endswith("app.log")]
    logs = b""
    for batch in c.logs.FollowLogs(
        logs_pb2.FollowLogsRequest(
            start_at=logs_pb2.START_AT_BEGINNING, filter=logs_pb2.LogFilter(source_ids=ids)
        ),
        metadata=md,
        timeout=10,
    ):
        logs += b"".join(rec.raw.encode() + rec.message.encode() for rec in batch.records)
    assert LOG_CANARY.encode() in logs

    detail = c.processes.GetProcess(
        processes_pb2.GetProcessRequest(ref=common_pb2.ProcessRef(pid=app.pid), sections=["env"]),
        metadata=md,
        timeout=10,
    )
    assert ENV_CANARY in str(detail)

    text = audit_file.read_text()
    for canary in (FILE_CANARY, LOG_CANARY, ENV_CANARY):
        assert canary not in text
    recs = [json.loads(x) for x in text.splitlines()]
    done = [x for x in recs if x["event"] == "rpc"]
    methods = [x["method"].rsplit("/", 1)[1] for x in done]
    assert methods.count("ReadFile") == 1 and methods.count("FollowLogs") == 1
    read = next(x for x in done if x["method"].endswith("/ReadFile"))
    assert read["object"]["path"] == str(data)
    assert read["code"] == "OK" and read["bytes"] > 0


def test_a_denied_read_is_audited_with_its_code(
    canary_pod: tuple[Running, Path, Path, subprocess.Popen[bytes]],
) -> None:
    """A read that fails (a missing path) is still one record, with its status code."""
    r, data, audit_file, _app = canary_pod
    with pytest.raises(grpc.RpcError) as e:
        r.client.files.ReadFile(
            files_pb2.ReadFileRequest(path=str(data) + ".missing"),
            metadata=r.client.metadata,
            timeout=10,
        )
    assert e.value.code() == grpc.StatusCode.NOT_FOUND
    recs = [json.loads(x) for x in audit_file.read_text().splitlines()]
    assert [x["code"] for x in recs if x["event"] == "rpc"] == ["NOT_FOUND"]
