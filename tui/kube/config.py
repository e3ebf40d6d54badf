"""Where the cluster is: kubeconfig contexts or the in-cluster service account.

Every ``Cluster`` owns PRIVATE ``ApiClient`` objects built from its own
``Configuration``; the kubernetes package's global default configuration is
never read or written, so two clusters (or tests) never leak into each other.
Streams (port-forward, exec) get a second ApiClient of their own: the
client's ``stream()`` helper swaps ``api_client.call_api`` on the instance it
is given, which races with any other call made on that instance meanwhile.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubernetes import client as k8s
from kubernetes.config import ConfigException
from kubernetes.config import incluster_config as _incluster_config
from kubernetes.config import kube_config as _kube_config

from tui.kube.errors import KubeError

SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"

# The config loaders carry no type hints; typed here as Any on purpose.
incluster_config: Any = _incluster_config
kube_config: Any = _kube_config


@dataclass
class Cluster:
    """An API endpoint with credentials, a default namespace and private clients.

    Attributes:
        configuration: this cluster's own Configuration (never the global one).
        namespace: the namespace to use when none is given.
        context: the kubeconfig context name ("" in-cluster).
    """

    configuration: k8s.Configuration
    namespace: str
    context: str = ""
    _api: k8s.ApiClient | None = field(default=None, repr=False)

    @property
    def api_client(self) -> k8s.ApiClient:
        """The ApiClient for ordinary (REST) calls, created once."""
        if self._api is None:
            self._api = k8s.ApiClient(configuration=self.configuration)
        return self._api

    def core(self) -> k8s.CoreV1Api:
        """CoreV1Api over the REST client."""
        return k8s.CoreV1Api(self.api_client)

    def apps(self) -> k8s.AppsV1Api:
        """AppsV1Api over the REST client."""
        return k8s.AppsV1Api(self.api_client)

    def stream_core(self) -> k8s.CoreV1Api:
        """CoreV1Api over a NEW ApiClient, for one websocket stream.

        A fresh client per stream because ``kubernetes.stream`` patches the
        client instance it is handed for the duration of the call.
        """
        return k8s.CoreV1Api(k8s.ApiClient(configuration=self.configuration))

    def close(self) -> None:
        """Release the REST client's connection pool."""
        if self._api is not None:
            self._api.close()  # type: ignore[no-untyped-call]
            self._api = None


def _new_configuration() -> k8s.Configuration:
    # type.__call__ skips any class-level default handling: the object is ours.
    cfg: k8s.Configuration = type.__call__(k8s.Configuration)
    # urllib3 would retry a timed-out GET three times (4x the timeout before a
    # user hears anything); one retry covers a dropped keep-alive connection.
    cfg.retries = 1
    return cfg


def load(
    context: str | None = None,
    namespace: str | None = None,
    kubeconfig: str | None = None,
    environ: dict[str, str] | None = None,
    sa_dir: str = SA_DIR,
) -> Cluster:
    """Load a cluster the way kubectl would.

    In-cluster credentials are used when ``KUBERNETES_SERVICE_HOST`` is set
    and neither a context nor a kubeconfig is asked for; otherwise the
    kubeconfig (``--kubeconfig``, ``$KUBECONFIG``, ``~/.kube/config``).

    Args:
        context: kubeconfig context (default: the current one).
        namespace: override the context's namespace.
        kubeconfig: path to a kubeconfig file.
        environ: environment to read (default: os.environ).
        sa_dir: where the pod's service-account token, CA and namespace are.

    Raises:
        KubeError: no usable configuration; the message says what was tried.
    """
    env = os.environ if environ is None else environ
    cfg = _new_configuration()
    if env.get("KUBERNETES_SERVICE_HOST") and not context and not kubeconfig:
        try:
            incluster_config.InClusterConfigLoader(
                token_filename=f"{sa_dir}/token",
                cert_filename=f"{sa_dir}/ca.crt",
                environ=env,
            ).load_and_set(cfg)
        except ConfigException as e:
            raise KubeError(f"in-cluster config is incomplete: {e}") from None
        ns = namespace or _read_sa_namespace(sa_dir)
        return Cluster(cfg, ns, "")
    path = (
        kubeconfig
        or env.get("KUBECONFIG", "").split(os.pathsep)[0]
        or str(Path.home() / ".kube" / "config")
    )
    if not Path(path).exists():
        raise KubeError(
            f"no kubeconfig at {path} and not running in a cluster: "
            "pass --kubeconfig, set KUBECONFIG, or use --addr HOST:PORT"
        )
    try:
        contexts, active = kube_config.list_kube_config_contexts(config_file=path)
        chosen = active
        if context:
            chosen = next((c for c in contexts if c.get("name") == context), None)
            if chosen is None:
                names = ", ".join(sorted(str(c.get("name")) for c in contexts)) or "none"
                raise KubeError(f"no context {context!r} in {path} (contexts: {names})")
        kube_config.load_kube_config(
            config_file=path,
            context=context,
            client_configuration=cfg,
            persist_config=False,
        )
    except ConfigException as e:
        raise KubeError(f"kubeconfig {path} cannot be used: {e}") from None
    ctx_ns = str((chosen or {}).get("context", {}).get("namespace") or "default")
    return Cluster(cfg, namespace or ctx_ns, str((chosen or {}).get("name", "")))


def _read_sa_namespace(sa_dir: str) -> str:
    try:
        return Path(sa_dir, "namespace").read_text().strip() or "default"
    except OSError:
        return "default"
