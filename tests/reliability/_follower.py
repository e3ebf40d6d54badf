"""A log-following client as its own process (so a test can SIGSTOP it or cut it off).

``python -m tests.reliability._follower ADDRESS TOKEN SOURCE_ID LAST`` follows
the source from the beginning and prints ``tick N`` numbers, one JSON line
each: ``{"tick": N}``; after any stream error it prints ``{"error": CODE}`` and
resumes from the cursors of the last batch it fully processed. It exits once
it has printed tick LAST. Notice and gap records are printed as
``{"kind": ..., "text": ...}``.
"""

from __future__ import annotations

import json
import re
import sys
import time

import grpc

from protos import logs_pb2, logs_pb2_grpc

TICK = re.compile(r"tick (\d+)")


def main() -> int:
    address, token, sid, last = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    md = (("authorization", f"Bearer {token}"),)
    options = [("grpc.initial_reconnect_backoff_ms", 100), ("grpc.max_reconnect_backoff_ms", 500)]
    cursors: dict[str, str] = {}
    deadline = time.monotonic() + 120
    with grpc.insecure_channel(address, options=options) as ch:
        stub = logs_pb2_grpc.LogsStub(ch)
        while time.monotonic() < deadline:
            req = logs_pb2.FollowLogsRequest(
                cursors=cursors,
                start_at=logs_pb2.START_AT_BEGINNING,
                follow=True,
                filter=logs_pb2.LogFilter(source_ids=[sid]),
            )
            try:
                for batch in stub.FollowLogs(req, metadata=md, timeout=60, wait_for_ready=True):
                    for r in batch.records:
                        text = r.message or r.raw
                        if r.kind != logs_pb2.RECORD_KIND_LINE:
                            print(json.dumps({"kind": r.kind, "text": text}), flush=True)
                        elif m := TICK.search(text):
                            n = int(m.group(1))
                            print(json.dumps({"tick": n}), flush=True)
                    cursors.update(batch.cursors)
                    if any(
                        (m := TICK.search(r.message or r.raw)) and int(m.group(1)) >= last
                        for r in batch.records
                    ):
                        return 0
            except grpc.RpcError as e:
                print(json.dumps({"error": e.code().name}), flush=True)  # type: ignore[attr-defined]
                time.sleep(0.1)
    return 1


if __name__ == "__main__":
    raise SystemExit(main())
