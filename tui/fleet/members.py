"""Who is in the fleet: connection flags -> members, and a client per member.

A fleet exists when the flags name more than one sidecar: several ``--addr``
values (repeated or comma-separated; each a HOST:PORT or ``pod/NAME``), or a
``deploy/NAME`` / ``-l key=value`` matching more than one pod that carries a
sidecar. With one sidecar, ``resolve_fleet`` returns None and the caller
takes the single-target path unchanged.

Pods that cannot be asked (no sidecar, Pending, being deleted) stay in the
fleet as members with an ``error``: the answer lists them, never hides them.
"""

from __future__ import annotations

import argparse
import os
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tui.address import AddressError
from tui.client import Client, ConnectError, Target

if TYPE_CHECKING:
    from tui.kube.config import Cluster
    from tui.kube.targets import PodTarget, TargetSpec

#: Default bound on the pods one command may ask (raise with --fleet-max-pods).
MAX_PODS = 256


class FleetError(Exception):
    """The fleet cannot be formed (bad flags, API refused); a one-line message."""


@dataclass(frozen=True)
class Member:
    """One sidecar of the fleet.

    Attributes:
        name: what the user sees in the POD column (pod name, or the address).
        target: where to connect directly ("" address = through Kubernetes).
        pod: the resolved pod (Kubernetes members).
        error: why this member cannot be asked at all ("" = it can).
    """

    name: str
    target: Target | None = None
    pod: PodTarget | None = None
    error: str = ""


class Fleet:
    """The members and the shared Kubernetes connection (when there is one).

    Args:
        members: in display order.
        cluster: the loaded cluster for Kubernetes members (closed by ``close``).
        token: the bearer token given on the command line ("" = each pod's Secret).
        context: the kubeconfig context the pods were found in (None = current).
    """

    def __init__(
        self,
        members: list[Member],
        cluster: Cluster | None = None,
        token: str = "",
        context: str | None = None,
    ) -> None:
        self.members = members
        self.cluster = cluster
        self.token = token
        self.context = context
        self._tokens: dict[tuple[str, str], str] = {}
        self._lock = threading.Lock()

    def open(self, member: Member) -> Client:
        """A client for ``member`` (a port-forward for a pod; caller closes it).

        Raises:
            ConnectError: the pod's token Secret cannot be read, or no way to reach it.
        """
        if member.target is not None:
            return Client(member.target)
        if member.pod is None or self.cluster is None:
            raise ConnectError(member.error or f"{member.name}: no address")
        from tui.kube.connect import KubeClient
        from tui.kube.errors import KubeError
        from tui.kube.portforward import Forwarder

        try:
            token = self.token or self._token_of(member.pod)
        except KubeError as e:
            raise ConnectError(str(e)) from None
        # No refresh: a fleet is a snapshot of pods; a replaced pod is a new member.
        return KubeClient(
            self.cluster, member.pod, Forwarder(self.cluster, member.pod), token, owns_cluster=False
        )

    def _token_of(self, pod: PodTarget) -> str:
        # Replicas share one Secret: read it once, not once per pod.
        from tui.kube.targets import read_token

        key = (pod.namespace, pod.token_secret)
        # Held across the read: the other workers wait for the one read instead of repeating it.
        with self._lock:
            if key not in self._tokens:
                self._tokens[key] = read_token(self.cluster, pod)  # type: ignore[arg-type]
            return self._tokens[key]

    def close(self) -> None:
        """Close the shared cluster connection."""
        if self.cluster is not None:
            self.cluster.close()
            self.cluster = None


def split_addresses(value: str | None) -> list[str]:
    """``a,b`` / repeated ``--addr`` (joined by the CLI) -> distinct items in order."""
    out: list[str] = []
    for raw in (value or "").split(","):
        item = raw.strip()
        if item and item not in out:
            out.append(item)
    return out


def resolve_fleet(args: argparse.Namespace) -> Fleet | None:
    """The fleet ``args`` name, or None when they name a single sidecar.

    Raises:
        FleetError: malformed flags, too many pods, or the Kubernetes API refused.
    """
    target_text = getattr(args, "target", None) or ""
    selector = getattr(args, "selector", None) or ""
    addr = getattr(args, "addr", None)
    if addr is None and not target_text and not selector:
        addr = os.environ.get("BORESCOPE_ADDR") or None
        if addr is None:
            target_text = os.environ.get("BORESCOPE_TARGET", "")
    items = split_addresses(addr)
    token = getattr(args, "token", None) or os.environ.get("BORESCOPE_TOKEN", "")
    limit = getattr(args, "fleet_max_pods", None) or MAX_PODS
    if len(items) > 1 and (target_text or selector):
        raise FleetError("give several --addr values or one --target/-l, not both")
    if len(items) <= 1:
        if not _may_expand(target_text or (items[0] if items else ""), selector):
            return None
        items = [target_text or items[0]] if (target_text or items) else []
    cluster = None
    if selector or any("/" in i for i in items):
        cluster = _load_cluster(args)
    try:
        members = _members(cluster, args, items, selector, token)
        askable = sum(1 for m in members if not m.error)
        if len(items) <= 1 and askable <= 1:
            # One sidecar: the single-target path (it says why the others cannot be asked).
            raise _Single
        if len(members) > limit:
            raise FleetError(
                f"{len(members)} pods match, more than --fleet-max-pods {limit}: narrow the "
                "selector or raise the bound (see the README: fleet mode at scale)"
            )
    except _Single:
        if cluster is not None:
            cluster.close()
        return None
    except FleetError:
        if cluster is not None:
            cluster.close()
        raise
    return Fleet(members, cluster, token, getattr(args, "context", None))


def _members(
    cluster: Cluster | None,
    args: argparse.Namespace,
    items: list[str],
    selector: str,
    token: str,
) -> list[Member]:
    members = _expand_text(cluster, args, "", selector) if selector else []
    for item in items:
        if "/" in item:
            members += _expand_text(cluster, args, item, "")
            continue
        try:
            members.append(Member(item, Target.from_env(item, token)))
        except AddressError as e:
            raise FleetError(str(e)) from None
    return members


class _Single(Exception):
    """Internal: the flags name one sidecar after all."""


def _may_expand(text: str, selector: str) -> bool:
    """Whether a single target can mean several pods (deploy/NAME, a selector)."""
    if selector:
        return True
    kind = text.split("/", 1)[0].lower() if "/" in text else ""
    return kind in ("deploy", "deployment", "deployments")


def _load_cluster(args: argparse.Namespace) -> Cluster:
    from tui.kube import config as kube_config
    from tui.kube.errors import KubeError

    try:
        return kube_config.load(
            getattr(args, "context", None),
            getattr(args, "namespace", None),
            getattr(args, "kubeconfig", None),
        )
    except KubeError as e:
        raise FleetError(str(e)) from None


def _expand_text(
    cluster: Cluster | None, args: argparse.Namespace, text: str, selector: str
) -> list[Member]:
    from tui.kube.errors import KubeError
    from tui.kube.targets import parse_target

    assert cluster is not None
    ns = getattr(args, "namespace", None) or cluster.namespace
    try:
        return _expand(cluster, parse_target(text, selector), ns)
    except KubeError as e:
        raise FleetError(str(e)) from None


def _expand(cluster: Cluster, spec: TargetSpec, ns: str) -> list[Member]:
    """The pods ``spec`` names, one member each (sorted by name)."""
    from kubernetes.client.exceptions import ApiException

    from tui.kube.errors import KubeError, explain
    from tui.kube.targets import list_pods, load_json, resolve, selector_of, to_target

    if spec.kind == "pod":
        return [_member_of(resolve(cluster, spec, ns))]
    selector, what = spec.selector, spec.selector
    if spec.kind == "deploy":
        try:
            dep = load_json(cluster.apps().read_namespaced_deployment, spec.name, ns)
        except ApiException as e:
            raise explain(e, "get", "deployments", ns, spec.name) from None
        selector, what = selector_of(dep), f"deploy/{spec.name}"
    pods = list_pods(cluster, ns, selector)
    if not pods:
        raise KubeError(f"no pods match {what} in namespace {ns}")
    pods.sort(key=lambda p: str((p.get("metadata") or {}).get("name", "")))
    return [_member_of(to_target(p)) for p in pods]


def _member_of(pod: PodTarget) -> Member:
    raw: dict[str, Any] = pod.raw
    phase = (raw.get("status") or {}).get("phase", "")
    error = ""
    if not pod.sidecar:
        error = "no borescope sidecar in this pod"
    elif (raw.get("metadata") or {}).get("deletionTimestamp"):
        error = "pod is being deleted"
    elif phase and phase != "Running":
        error = f"pod is {phase}"
    return Member(pod.pod, pod=pod, error=error)
