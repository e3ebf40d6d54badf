"""Info service: who the sidecar is, what it may do, what it can see."""

from __future__ import annotations

import os
import socket

import grpc

import agent
from agent._common import boot_time
from protos import info_pb2, info_pb2_grpc
from sidecar import API_VERSION, __version__
from sidecar.convert import info as convert
from sidecar.convert.common import timestamp
from sidecar.deps import Deps

SERVICE_NAMES = [info_pb2.DESCRIPTOR.services_by_name["Info"].full_name]


class InfoServicer(info_pb2_grpc.InfoServicer):
    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    def GetInfo(
        self, request: info_pb2.GetInfoRequest, context: grpc.ServicerContext
    ) -> info_pb2.GetInfoResponse:
        cfg = self.deps.config
        acc = agent.access()
        containers = self.deps.pod.containers()
        limitations = [
            f"container {c.name}: {u.field}: {u.reason}" for c in containers for u in c.unavailable
        ]
        limitations += [
            f"container {c.name}: cannot open its root (pid {c.root.pid}): "
            "needs the same UID or CAP_SYS_PTRACE"
            for c in containers
            if not c.root_accessible and c.kind is agent.ContainerKind.APP
        ]
        return info_pb2.GetInfoResponse(
            api_version=API_VERSION,
            sidecar_version=__version__,
            pod_name=cfg.pod_name or os.environ.get("HOSTNAME", socket.gethostname()),
            namespace=cfg.namespace,
            node_name=cfg.node_name,
            hostname=socket.gethostname(),
            sidecar_started=timestamp(self.deps.started),
            boot_time=timestamp(boot_time()),
            access=info_pb2.Access(
                uid=acc.uid,
                gid=acc.gid,
                capabilities=acc.capabilities,
                limitations=limitations,
                openat2=acc.openat2,
                pidfd=acc.pidfd,
            ),
            features=convert.features(cfg),
            containers=[convert.container(c) for c in containers],
            sidecar_pid=self.deps.pod.self_pid,
        )

    def ListContainers(
        self, request: info_pb2.ListContainersRequest, context: grpc.ServicerContext
    ) -> info_pb2.ListContainersResponse:
        containers = self.deps.pod.containers(
            include_sidecar=request.include_sidecar, include_infra=request.include_infra
        )
        return info_pb2.ListContainersResponse(
            containers=[convert.container(c) for c in containers]
        )


def register(server: grpc.Server, deps: Deps) -> None:
    info_pb2_grpc.add_InfoServicer_to_server(InfoServicer(deps), server)
