"""Targets (``pod/NAME[/CONTAINER]``, ``deploy/NAME``, ``-l k=v``), discovery and the token.

Pods are handled as the API's own JSON (camelCase dicts), read with
``_preload_content=False``: one vocabulary with the injector and the API
docs, and no model validation between the wire and the decision.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

from tui.kube import names
from tui.kube.config import Cluster
from tui.kube.errors import KubeError, explain

Json = dict[str, Any]
REQUEST_TIMEOUT = (10.0, 30.0)

_KINDS = {
    "pod": "pod",
    "pods": "pod",
    "po": "pod",
    "deploy": "deploy",
    "deployment": "deploy",
    "deployments": "deploy",
}


@dataclass(frozen=True)
class TargetSpec:
    """What the user named: a pod, a deployment or a label selector."""

    kind: str
    name: str = ""
    container: str = ""
    selector: str = ""


@dataclass(frozen=True)
class PodTarget:
    """A resolved pod and what is needed to reach its sidecar.

    Attributes:
        namespace, pod: the pod.
        container: the app container ("" = the first non-sidecar one).
        sidecar: the sidecar container's name ("" when the pod has none).
        sidecar_kind: "injected", "static", "ephemeral" or "".
        port: the sidecar's gRPC port in the pod.
        token_secret: the Secret named by the pod's annotation ("" = none).
        raw: the pod as the API returned it.
    """

    namespace: str
    pod: str
    container: str
    sidecar: str
    sidecar_kind: str
    port: int
    token_secret: str
    raw: Json


def parse_target(text: str = "", selector: str = "") -> TargetSpec:
    """Parse ``pod/NAME[/CONTAINER]``, ``deploy/NAME``, a bare pod NAME, or a selector.

    Raises:
        KubeError: malformed, or both a name and a selector.
    """
    text = text.strip()
    if selector and text:
        raise KubeError("give either a target (pod/NAME, deploy/NAME) or -l SELECTOR, not both")
    if selector:
        if "=" not in selector and "!" not in selector and " in " not in selector:
            # A bare key is a valid selector ("has the label"), but is almost
            # always a typo for key=value at 3 a.m.; say so.
            raise KubeError(f"selector {selector!r} has no '=': write -l key=value")
        return TargetSpec("selector", selector=selector)
    if not text:
        raise KubeError("no target: use pod/NAME, deploy/NAME or -l key=value")
    parts = text.split("/")
    if len(parts) == 1:
        return TargetSpec("pod", parts[0])
    kind = _KINDS.get(parts[0].lower())
    if kind is None:
        raise KubeError(
            f"unknown target kind {parts[0]!r} in {text!r}: use pod/NAME or deploy/NAME"
        )
    if not parts[1]:
        raise KubeError(f"target {text!r} has no name")
    if kind == "pod" and len(parts) in (2, 3):
        return TargetSpec("pod", parts[1], parts[2] if len(parts) == 3 else "")
    if kind == "deploy" and len(parts) == 2:
        return TargetSpec("deploy", parts[1])
    raise KubeError(f"malformed target {text!r}: use pod/NAME[/CONTAINER] or deploy/NAME")


def load_json(call: Callable[..., Any], *args: Any, **kwargs: Any) -> Json:
    """Call a generated API method and return the raw JSON document.

    Raises:
        ApiException: the API answered with an error (callers explain it).
        KubeError: the API could not be reached (DNS, TLS, connection refused).
    """
    # The generated client waits forever by default; a blackholed API server
    # must not hang the terminal: 10 s to connect, 30 s for the answer.
    kwargs.setdefault("_request_timeout", REQUEST_TIMEOUT)
    try:
        resp = call(*args, _preload_content=False, **kwargs)
    except HTTPError as e:
        # urllib3 wraps the cause (SSLError, NewConnectionError) in MaxRetryError.
        reason = getattr(e, "reason", None) or e
        host = getattr(e, "pool", None)
        where = f" at {host.scheme}://{host.host}:{host.port}" if host is not None else ""
        hint = ""
        if "CERTIFICATE_VERIFY_FAILED" in str(reason):
            hint = " (the kubeconfig's certificate-authority does not match the server's)"
        raise KubeError(f"cannot reach the Kubernetes API{where}: {reason}{hint}") from None
    doc: Json = json.loads(resp.data)
    return doc


def _port_of(container: Json) -> int:
    for env in container.get("env") or []:
        if env.get("name") == "BORESCOPE_LISTEN" and env.get("value"):
            port = str(env["value"]).rsplit(":", 1)[-1]
            if port.isdigit():
                return int(port)
    return names.SIDECAR_PORT


def _looks_like_sidecar(container: Json) -> bool:
    name = str(container.get("name", ""))
    return name == names.SIDECAR_CONTAINER or name.startswith(names.SIDECAR_CONTAINER + "-")


def sidecar_of(pod: Json) -> tuple[str, str, int]:
    """The sidecar in ``pod``: (container name, kind, port), or ("", "", 0).

    Kind is "injected" (the webhook's status annotation), "static" (a
    container added by the chart helper or by hand), or "ephemeral" (added by
    ``borescope attach``; the newest running one wins).
    """
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    ann = meta.get("annotations") or {}
    for c in [*(spec.get("containers") or []), *(spec.get("initContainers") or [])]:
        if _looks_like_sidecar(c):
            injected = ann.get(names.ANN_STATUS) == names.STATUS_INJECTED
            return str(c["name"]), "injected" if injected else "static", _port_of(c)
    running = {
        s.get("name")
        for s in (pod.get("status") or {}).get("ephemeralContainerStatuses") or []
        if "running" in (s.get("state") or {})
    }
    for c in reversed(spec.get("ephemeralContainers") or []):
        if _looks_like_sidecar(c) and c.get("name") in running:
            return str(c["name"]), "ephemeral", _port_of(c)
    return "", "", 0


def app_containers(pod: Json) -> list[str]:
    """Names of the pod's containers that are not the sidecar."""
    return [
        str(c["name"])
        for c in (pod.get("spec") or {}).get("containers") or []
        if not _looks_like_sidecar(c)
    ]


def is_ready(pod: Json) -> bool:
    """Running, not being deleted, and every container ready."""
    status = pod.get("status") or {}
    if status.get("phase") != "Running" or (pod.get("metadata") or {}).get("deletionTimestamp"):
        return False
    conds = {c.get("type"): c.get("status") for c in status.get("conditions") or []}
    return conds.get("Ready") == "True"


def to_target(pod: Json, container: str = "") -> PodTarget:
    """A PodTarget for ``pod`` (whether or not it has a sidecar)."""
    meta = pod.get("metadata") or {}
    sidecar, kind, port = sidecar_of(pod)
    apps = app_containers(pod)
    if container and container not in apps:
        raise KubeError(
            f"pod {meta.get('name')} has no container {container!r} "
            f"(containers: {', '.join(apps) or 'none'})"
        )
    return PodTarget(
        namespace=str(meta.get("namespace", "")),
        pod=str(meta.get("name", "")),
        container=container or (apps[0] if apps else ""),
        sidecar=sidecar,
        sidecar_kind=kind,
        port=port,
        token_secret=str((meta.get("annotations") or {}).get(names.ANN_TOKEN_SECRET, "")),
        raw=pod,
    )


def selector_of(deployment: Json) -> str:
    """A deployment's spec.selector as a label-selector string."""
    sel = (deployment.get("spec") or {}).get("selector") or {}
    terms = [f"{k}={v}" for k, v in sorted((sel.get("matchLabels") or {}).items())]
    for expr in sel.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values") or []
        if op == "In":
            terms.append(f"{key} in ({','.join(values)})")
        elif op == "NotIn":
            terms.append(f"{key} notin ({','.join(values)})")
        elif op == "Exists":
            terms.append(key)
        elif op == "DoesNotExist":
            terms.append(f"!{key}")
    return ",".join(terms)


def list_pods(cluster: Cluster, namespace: str, selector: str = "") -> list[Json]:
    """Pods in ``namespace`` matching ``selector``.

    Raises:
        KubeError: RBAC or transport failure, explained.
    """
    try:
        doc = load_json(
            cluster.core().list_namespaced_pod, namespace, label_selector=selector or None
        )
    except ApiException as e:
        raise explain(e, "list", "pods", namespace) from None
    return list(doc.get("items") or [])


def _best(pods: list[Json], what: str, namespace: str) -> Json:
    """The pod to connect to: with a sidecar, ready, newest first."""
    if not pods:
        raise KubeError(f"no pods match {what} in namespace {namespace}")

    def rank(p: Json) -> tuple[bool, bool, str]:
        created = str((p.get("metadata") or {}).get("creationTimestamp", ""))
        return (bool(sidecar_of(p)[0]), is_ready(p), created)

    return max(pods, key=rank)


def resolve(cluster: Cluster, spec: TargetSpec, namespace: str = "") -> PodTarget:
    """Find the pod ``spec`` means, preferring one that carries the sidecar.

    Raises:
        KubeError: not found, forbidden, or ambiguous beyond repair.
    """
    ns = namespace or cluster.namespace
    if spec.kind == "pod":
        try:
            pod = load_json(cluster.core().read_namespaced_pod, spec.name, ns)
        except ApiException as e:
            raise explain(e, "get", "pods", ns, spec.name) from None
        return to_target(pod, spec.container)
    if spec.kind == "deploy":
        try:
            dep = load_json(cluster.apps().read_namespaced_deployment, spec.name, ns)
        except ApiException as e:
            raise explain(e, "get", "deployments", ns, spec.name) from None
        selector = selector_of(dep)
        return to_target(_best(list_pods(cluster, ns, selector), f"deploy/{spec.name}", ns))
    return to_target(_best(list_pods(cluster, ns, spec.selector), spec.selector, ns))


def read_token(cluster: Cluster, target: PodTarget) -> str:
    """The bearer token from the Secret the pod's annotation names ("" when none).

    Raises:
        KubeError: the Secret cannot be read or has no ``token`` key.
    """
    if not target.token_secret:
        return ""
    try:
        secret = load_json(
            cluster.core().read_namespaced_secret, target.token_secret, target.namespace
        )
    except ApiException as e:
        raise explain(e, "get", "secrets", target.namespace, target.token_secret) from None
    value = (secret.get("data") or {}).get(names.TOKEN_KEY)
    if not value:
        raise KubeError(
            f"secret {target.token_secret} (named by {names.ANN_TOKEN_SECRET} on pod "
            f"{target.pod}) has no {names.TOKEN_KEY!r} key: pass --token"
        )
    return base64.b64decode(value).decode().strip()
