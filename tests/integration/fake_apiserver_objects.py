"""Kubernetes objects as the API server returns them, for the fake API server."""

from __future__ import annotations

import base64
import copy
import hashlib
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

Json = dict[str, Any]
#: Fields the API server refuses on an ephemeral container.
EPHEMERAL_FORBIDDEN = (
    "ports",
    "resources",
    "livenessProbe",
    "readinessProbe",
    "startupProbe",
    "lifecycle",
)


def rfc3339(t: float) -> str:
    """RFC3339 at second precision, as metav1.Time marshals."""
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def rfc3339nano(t: float, nanos: int | None = None) -> str:
    """RFC3339Nano as the kubelet prefixes log lines (9 fraction digits)."""
    ns = nanos if nanos is not None else round((t % 1) * 1e9)
    return datetime.fromtimestamp(int(t), UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{ns:09d}Z"


def status(code: int, reason: str, message: str, details: Json | None = None) -> Json:
    """A metav1.Status failure body."""
    doc: Json = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    if details:
        doc["details"] = details
    return doc


def make_pod(
    name: str,
    namespace: str = "default",
    *,
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
    containers: list[Json] | None = None,
    phase: str = "Running",
    ready: bool = True,
    created: float | None = None,
) -> Json:
    """A Pod as the API server returns it."""
    created = created or time.time() - 3600
    containers = containers or [{"name": "app", "image": "registry.example/app:1.0"}]
    for c in containers:
        c.setdefault("resources", {})
        c.setdefault("terminationMessagePath", "/dev/termination-log")
        c.setdefault("terminationMessagePolicy", "File")
        c.setdefault("imagePullPolicy", "IfNotPresent")
    return {
        "kind": "Pod",
        "apiVersion": "v1",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": hashlib.md5(f"{namespace}/{name}".encode()).hexdigest(),
            "resourceVersion": "1000",
            "creationTimestamp": rfc3339(created),
            "labels": labels or {},
            "annotations": annotations or {},
        },
        "spec": {
            "containers": containers,
            "restartPolicy": "Always",
            "dnsPolicy": "ClusterFirst",
            "serviceAccountName": "default",
            "nodeName": "node-1",
            "securityContext": {},
        },
        "status": {
            "phase": phase,
            "conditions": [
                {"type": "Ready", "status": "True" if ready else "False"},
                {"type": "ContainersReady", "status": "True" if ready else "False"},
            ],
            "podIP": "10.0.0.7",
            "startTime": rfc3339(created),
            "containerStatuses": [
                {
                    "name": c["name"],
                    "image": c["image"],
                    "imageID": "",
                    "ready": ready,
                    "restartCount": 0,
                    "started": phase == "Running",
                    "state": {"running": {"startedAt": rfc3339(created)}}
                    if phase == "Running"
                    else {"waiting": {"reason": "ContainerCreating"}},
                }
                for c in containers
            ],
        },
    }


def parse_time(text: str) -> float:
    return datetime.strptime(text[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC).timestamp() + (
        float("0" + text[19:].rstrip("Z")) if len(text) > 20 and text[19] == "." else 0.0
    )


def matches(pod: Json, selector: str) -> bool:
    labels = pod["metadata"].get("labels") or {}
    for term in filter(None, (t.strip() for t in selector.split(","))):
        if "!=" in term:
            k, v = term.split("!=", 1)
            if labels.get(k) == v:
                return False
        elif "=" in term:
            k, v = term.split("=", 1)
            if labels.get(k.rstrip("=")) != v:
                return False
        elif labels.get(term) is None:
            return False
    return True


def with_ephemeral_status(pod: Json, start_s: float) -> Json:
    out = copy.deepcopy({k: v for k, v in pod.items() if not k.startswith("_")})
    added = pod.get("_ephemeral_added", {})
    statuses = []
    for c in pod["spec"].get("ephemeralContainers", []):
        running = time.time() - added.get(c["name"], 0) >= start_s
        statuses.append(
            {
                "name": c["name"],
                "image": c["image"],
                "imageID": "",
                "ready": False,
                "restartCount": 0,
                "state": {"running": {"startedAt": rfc3339(time.time())}}
                if running
                else {"waiting": {"reason": "ContainerCreating"}},
            }
        )
    if statuses:
        out["status"]["ephemeralContainerStatuses"] = statuses
    return out


class State:
    """Everything the fake cluster holds; tests change it directly."""

    def __init__(self, token: str) -> None:
        self.token = token
        self.lock = threading.Condition()
        self.pods: dict[tuple[str, str], Json] = {}
        self.deployments: dict[tuple[str, str], Json] = {}
        self.secrets: dict[tuple[str, str], Json] = {}
        #: (ns, pod, container, previous) -> [(unix time, line)]
        self.logs: dict[tuple[str, str, str, bool], list[tuple[float, str]]] = {}
        #: (ns, pod) -> real TCP address the pod's ports are on
        self.pod_addresses: dict[tuple[str, str], str] = {}
        #: (verb, resource) pairs RBAC denies
        self.forbidden: set[tuple[str, str]] = set()
        self.requests: list[Json] = []
        self.webhook_configs: dict[str, Json] = {}
        #: called with (ns, pod, container) when an ephemeral container is added
        self.on_ephemeral: Callable[[str, str, Json], str | None] | None = None
        self.log_generation = 0
        self.ephemeral_start_s = 0.2

    def add_pod(self, pod: Json, address: str = "") -> Json:
        key = (pod["metadata"]["namespace"], pod["metadata"]["name"])
        self.pods[key] = pod
        if address:
            self.pod_addresses[key] = address
        return pod

    def append_log(
        self, ns: str, pod: str, container: str, line: str, t: float | None = None
    ) -> None:
        with self.lock:
            self.logs.setdefault((ns, pod, container, False), []).append((t or time.time(), line))
            self.lock.notify_all()

    def drop_log_streams(self) -> None:
        """Cut every open follow stream (an API server restart or a network blip)."""
        with self.lock:
            self.log_generation += 1
            self.lock.notify_all()

    def seen(self, method: str, path_part: str) -> list[Json]:
        return [r for r in self.requests if r["method"] == method and path_part in r["path"]]


def kubeconfig_doc(url: str, token: str, ca_file: str, namespace: str, context: str) -> Json:
    """A kubeconfig with two contexts on one cluster (token auth; the CA when HTTPS)."""
    cluster: Json = {"server": url}
    if ca_file:
        with open(ca_file, "rb") as f:
            cluster["certificate-authority-data"] = base64.b64encode(f.read()).decode()
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "fake", "cluster": cluster}],
        "users": [{"name": "dev", "user": {"token": token}}],
        "contexts": [
            {
                "name": context,
                "context": {"cluster": "fake", "user": "dev", "namespace": namespace},
            },
            {
                "name": "other",
                "context": {"cluster": "fake", "user": "dev", "namespace": "elsewhere"},
            },
        ],
        "current-context": context,
    }
