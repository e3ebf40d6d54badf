"""``borescope attach``: add the sidecar to a running pod as an ephemeral container.

No restart: a strategic-merge patch of ``pods/ephemeralcontainers`` adds a
container that shares the target container's process namespace
(``targetContainerName``). A fresh random token is made on this machine;
only its SHA-256 goes into the pod spec (readable by anyone who can get the
pod), the token itself never leaves this process. Ephemeral containers
cannot be removed: each attach adds one, on the next free port.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable
from typing import Any

from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

from tui import __version__
from tui.kube import names
from tui.kube.config import Cluster
from tui.kube.errors import KubeError, explain
from tui.kube.targets import Json, PodTarget, app_containers, load_json, to_target

PROFILES = ("restricted", "general")
#: The image of this client's own release (the chart's default too).
DEFAULT_IMAGE = f"ghcr.io/borescope/borescope:{__version__}"
SMP = "application/strategic-merge-patch+json"
#: Waiting reasons that will not resolve by waiting longer.
STUCK = {
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "CreateContainerConfigError",
    "CreateContainerError",
    "RunContainerError",
}


def new_token() -> tuple[str, str]:
    """A random bearer token and its SHA-256 hex digest (what the sidecar gets)."""
    token = secrets.token_urlsafe(32)
    return token, hashlib.sha256(token.encode()).hexdigest()


def _uid_of(pod: Json, container: str) -> int | None:
    meta = pod.get("metadata") or {}
    ann = str((meta.get("annotations") or {}).get(names.ANN_UID, "")).strip()
    if ann.isdigit():
        return int(ann)
    spec = pod.get("spec") or {}
    for c in spec.get("containers") or []:
        if c.get("name") == container:
            uid = (c.get("securityContext") or {}).get("runAsUser")
            if isinstance(uid, int):
                return uid
    uid = (spec.get("securityContext") or {}).get("runAsUser")
    return uid if isinstance(uid, int) else None


def ephemeral_container(
    pod: Json, target: str, token_hash: str, profile: str, image: str
) -> tuple[Json, list[str]]:
    """The ephemeral container to add, and notes for the user.

    Raises:
        KubeError: the profile cannot work for this pod (e.g. restricted + root app).
    """
    if profile not in PROFILES:
        raise KubeError(f"unknown profile {profile!r}: use {' or '.join(PROFILES)}")
    existing = [
        c["name"]
        for c in (pod.get("spec") or {}).get("ephemeralContainers") or []
        if str(c.get("name", "")).startswith(names.SIDECAR_CONTAINER + "-")
    ]
    # Every container shares the pod's network namespace: a new port per attach.
    port = names.SIDECAR_PORT + 1 + len(existing)
    notes: list[str] = []
    sc: Json = {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    uid = _uid_of(pod, target)
    if profile == "general":
        # Added capabilities only take effect for root (no ambient caps in Kubernetes).
        sc["capabilities"]["add"] = ["SYS_PTRACE"]
        sc["runAsUser"] = 0
        sc["runAsNonRoot"] = False
        notes.append("profile general: the sidecar runs as root with SYS_PTRACE")
    elif uid == 0:
        raise KubeError(
            f"container {target} runs as root, which the restricted profile cannot match: "
            "use --profile general (root + SYS_PTRACE)"
        )
    elif uid is None:
        sc["runAsNonRoot"] = True
        notes.append(
            f"the app's UID is not in the pod spec: the sidecar runs as its image's user and "
            f"may not see the app's files (set annotation {names.ANN_UID} or use --profile general)"
        )
    else:
        sc["runAsUser"] = uid
        sc["runAsNonRoot"] = True
    name = f"{names.SIDECAR_CONTAINER}-{secrets.token_hex(3)}"
    container: Json = {
        "name": name,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "targetContainerName": target,
        "env": [
            {"name": "BORESCOPE_LISTEN", "value": f"127.0.0.1:{port}"},
            {"name": "BORESCOPE_TOKEN_SHA256", "value": token_hash},
            {
                "name": "BORESCOPE_POD_NAME",
                "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}},
            },
            {
                "name": "BORESCOPE_NAMESPACE",
                "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}},
            },
        ],
        "securityContext": sc,
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "stdin": False,
        "tty": False,
    }
    return container, notes


def _state_of(pod: Json, name: str) -> Json:
    for s in (pod.get("status") or {}).get("ephemeralContainerStatuses") or []:
        if s.get("name") == name:
            state: Json = s.get("state") or {}
            return state
    return {}


def wait_running(
    cluster: Cluster,
    namespace: str,
    pod: str,
    name: str,
    *,
    timeout: float = 90.0,
    progress: Callable[[str], None] | None = None,
) -> Json:
    """Poll the pod until the ephemeral container runs; return the pod.

    Raises:
        KubeError: it terminated, is stuck (image pull, config), or the timeout passed.
    """
    deadline = time.monotonic() + timeout
    last = ""
    while True:
        try:
            doc = load_json(cluster.core().read_namespaced_pod, pod, namespace)
        except ApiException as e:
            raise explain(e, "get", "pods", namespace, pod) from None
        state = _state_of(doc, name)
        if "running" in state:
            return doc
        if "terminated" in state:
            t = state["terminated"]
            raise KubeError(
                f"the sidecar container {name} exited ({t.get('reason', '?')}, code "
                f"{t.get('exitCode', '?')}): {str(t.get('message', '')).strip()[:300]} "
                f"(kubectl logs -n {namespace} {pod} -c {name})"
            )
        waiting = state.get("waiting") or {}
        reason = str(waiting.get("reason", "Pending"))
        if reason in STUCK:
            raise KubeError(
                f"the sidecar container {name} cannot start: {reason}: "
                f"{str(waiting.get('message', '')).strip()[:300]}"
            )
        if progress is not None and reason != last:
            progress(f"waiting for {name}: {reason}")
            last = reason
        if time.monotonic() >= deadline:
            raise KubeError(
                f"the sidecar container {name} is not running after {timeout:g}s ({reason})"
            )
        time.sleep(0.5)


def attach(
    cluster: Cluster,
    namespace: str,
    pod: str,
    *,
    target_container: str = "",
    profile: str = "restricted",
    image: str = DEFAULT_IMAGE,
    timeout: float = 90.0,
    progress: Callable[[str], None] | None = None,
) -> tuple[PodTarget, str, list[str]]:
    """Add an ephemeral sidecar to ``pod`` and wait until it runs.

    Returns:
        (the pod as a target with the new sidecar, the bearer token, notes).

    Raises:
        KubeError: forbidden (names pods/ephemeralcontainers), invalid, or not running.
    """
    try:
        doc = load_json(cluster.core().read_namespaced_pod, pod, namespace)
    except ApiException as e:
        raise explain(e, "get", "pods", namespace, pod) from None
    apps = app_containers(doc)
    target = target_container or (apps[0] if apps else "")
    if target not in apps:
        raise KubeError(f"pod {pod} has no container {target!r} (containers: {', '.join(apps)})")
    if (doc.get("status") or {}).get("phase") != "Running":
        raise KubeError(f"pod {pod} is {(doc.get('status') or {}).get('phase')}, not Running")
    token, digest = new_token()
    container, notes = ephemeral_container(doc, target, digest, profile, image)
    body: dict[str, Any] = {"spec": {"ephemeralContainers": [container]}}
    if progress is not None:
        progress(f"adding ephemeral container {container['name']} (target {target}, {profile})")
    try:
        cluster.core().patch_namespaced_pod_ephemeralcontainers(
            pod, namespace, body, _content_type=SMP, _preload_content=False
        )
    except ApiException as e:
        raise explain(e, "patch", "pods/ephemeralcontainers", namespace, pod) from None
    except HTTPError as e:
        raise KubeError(f"cannot reach the Kubernetes API to add the container: {e}") from None
    doc = wait_running(
        cluster, namespace, pod, container["name"], timeout=timeout, progress=progress
    )
    pt = to_target(doc, target)
    port = int(container["env"][0]["value"].rsplit(":", 1)[1])
    return (
        PodTarget(
            namespace=pt.namespace,
            pod=pt.pod,
            container=target,
            sidecar=container["name"],
            sidecar_kind="ephemeral",
            port=port,
            token_secret="",
            raw=doc,
        ),
        token,
        notes,
    )
