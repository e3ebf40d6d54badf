"""A gRPC Client whose channel goes through a Kubernetes port-forward.

``open_client`` resolves the target, reads the token from the Secret the pod
names (unless one was given), starts the local forwarder and returns a
``KubeClient``: a ``tui.client.Client`` that also closes its forwarder, so
every command and the TUI use it exactly like a direct connection.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import grpc

from tui.client import Client, ConnectError, Target
from tui.kube import config as kube_config
from tui.kube.config import Cluster
from tui.kube.errors import KubeError
from tui.kube.portforward import Forwarder
from tui.kube.targets import PodTarget, TargetSpec, parse_target, read_token, resolve


@dataclass(frozen=True)
class KubeOptions:
    """How to reach the cluster (the CLI's --context/-n/--kubeconfig)."""

    context: str | None = None
    namespace: str | None = None
    kubeconfig: str | None = None


class KubeClient(Client):
    """A Client over a port-forward; ``close()`` also stops the forwarder.

    Attributes:
        cluster, pod, forwarder: what the connection runs through.
    """

    def __init__(
        self,
        cluster: Cluster,
        pod: PodTarget,
        forwarder: Forwarder,
        token: str,
        options: list[tuple[str, Any]] | None = None,
        *,
        owns_cluster: bool = True,
    ) -> None:
        super().__init__(Target(forwarder.address, token), options)
        self.cluster = cluster
        self.pod = pod
        self.forwarder = forwarder
        self._owns_cluster = owns_cluster

    def wait_ready(self, timeout: float = 5.0) -> None:
        """Like Client.wait_ready, but a failure says why the port-forward failed.

        RBAC and credential refusals end the wait at once: retrying cannot help.
        """
        future = grpc.channel_ready_future(self.channel)
        deadline = time.monotonic() + timeout
        try:
            while True:
                try:
                    future.result(timeout=min(0.2, max(0.0, deadline - time.monotonic())))
                    return
                except grpc.FutureTimeoutError:
                    if self.forwarder.fatal or time.monotonic() >= deadline:
                        break
        finally:
            future.cancel()
        why = self.forwarder.last_error
        if why:
            raise ConnectError(why)
        raise ConnectError(
            f"cannot reach the sidecar in pod {self.pod.namespace}/{self.pod.pod} port "
            f"{self.forwarder.remote_port} through port-forward within {timeout:g}s"
        )

    def close(self) -> None:
        super().close()
        self.forwarder.close()
        if self._owns_cluster:
            self.cluster.close()


def open_client(
    spec: TargetSpec | str,
    options: KubeOptions | None = None,
    token: str = "",
    cluster: Cluster | None = None,
) -> KubeClient:
    """Connect to the sidecar of the pod ``spec`` names, through port-forward.

    Args:
        spec: a TargetSpec or its text (pod/NAME[/C], deploy/NAME).
        options: context, namespace, kubeconfig.
        token: bearer token; "" = read it from the pod's token Secret.
        cluster: an already loaded cluster (the options are then ignored).

    Raises:
        KubeError: cannot load config, find the pod, or the pod has no sidecar.
    """
    opts = options or KubeOptions()
    if isinstance(spec, str):
        spec = parse_target(spec)
    owns = cluster is None
    cluster = cluster or kube_config.load(opts.context, opts.namespace, opts.kubeconfig)
    ns = opts.namespace or cluster.namespace
    pod = resolve(cluster, spec, ns)
    if not pod.sidecar:
        raise KubeError(
            f"pod {pod.namespace}/{pod.pod} has no borescope sidecar: label it "
            f"borescope.io/inject=true (webhook) or run 'borescope attach pod/{pod.pod} -n {pod.namespace}'"
        )
    token = token or read_token(cluster, pod)
    refresh = None if spec.kind == "pod" else (lambda: resolve(cluster, spec, ns))
    forwarder = Forwarder(cluster, pod, refresh=refresh)
    return KubeClient(cluster, pod, forwarder, token, owns_cluster=owns)
