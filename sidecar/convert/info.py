"""Info service conversions."""

from __future__ import annotations

import agent
from protos import info_pb2
from sidecar.config import Config
from sidecar.convert.common import process_ref, timestamp, unavailable


def container(c: agent.Container) -> info_pb2.Container:
    return info_pb2.Container(
        id=c.id,
        name=c.name,
        kind=int(c.kind),  # type: ignore[arg-type]
        mnt_ns=c.mnt_ns,
        cgroup=c.cgroup,
        root_process=process_ref(c.root),
        pids=c.pids,
        started=timestamp(c.started),
        root_accessible=c.root_accessible,
        restarts=c.restarts,
        unavailable=unavailable(c.unavailable),
    )


def features(config: Config) -> info_pb2.Features:
    return info_pb2.Features(
        signals=config.allow_signals,
        allowed_signals=config.allowed_signals if config.allow_signals else (),
        probes=config.allow_probes,
        reveal_secrets=config.reveal_secrets,
        sensitive_paths=config.allow_sensitive_paths,
        proc_sys_paths=config.allow_proc_sys,
        reflection=config.reflection,
    )
