"""The injector's decision: an AdmissionReview v1 in, an AdmissionReview v1 out.

Pure functions over the API's JSON (no I/O), so every case is testable on
real AdmissionReview documents. The pod gets ``shareProcessNamespace: true``,
a ``borescope`` container that runs as the app's UID with every capability
dropped, a read-only root filesystem, seccomp RuntimeDefault and an emptyDir
at /tmp, the token hash from a Secret, and a status annotation that makes a
second pass a no-op. Anything unexpected allows the pod unchanged with a
warning: the webhook must never be the reason an app cannot start.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import Any

from sidecar.injector import names

Json = dict[str, Any]

PROFILES = ("restricted", "privileged")
DEFAULT_EXCLUDED_NAMESPACES = ("kube-system", "kube-public", "kube-node-lease")


@dataclass(frozen=True)
class Settings:
    """What the chart tells the injector (flags or a JSON file)."""

    image: str = "ghcr.io/borescope/borescope:0.1.0"
    image_pull_policy: str = "IfNotPresent"
    command: tuple[str, ...] = ()
    args: tuple[str, ...] = ()
    """Extra args; the image's entrypoint is already ``borescope serve``."""
    profile: str = "restricted"
    """restricted (default) or privileged (adds SYS_PTRACE, runs as root)."""
    allow_privileged_annotation: bool = False
    """Honour ``borescope.io/profile: privileged`` on a pod."""
    token_secret: str = ""
    """Secret (in the pod's namespace) whose ``sha256`` key is the token hash; a
    pod's ``borescope.io/token-secret`` annotation overrides it. "" = none."""
    port: int = names.SIDECAR_PORT
    health_port: int = 0
    """Plaintext health-only port on all addresses for probes (0 = off)."""
    requests: dict[str, str] = field(default_factory=lambda: {"cpu": "10m", "memory": "32Mi"})
    limits: dict[str, str] = field(default_factory=dict)
    tmp_size_limit: str = "64Mi"
    excluded_namespaces: tuple[str, ...] = DEFAULT_EXCLUDED_NAMESPACES
    own_namespace: str = ""
    """The injector's namespace: the release's own pods there (label
    app.kubernetes.io/name=borescope) are never touched."""
    extra_env: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_json(cls, doc: Json) -> Settings:
        """Build from a JSON object with the field names as keys.

        Raises:
            ValueError: unknown key or a bad profile.
        """
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(doc) - known)
        if unknown:
            raise ValueError(f"unknown injector setting(s): {', '.join(unknown)}")
        values: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in doc.items()}
        s = cls(**values)
        if s.profile not in PROFILES:
            raise ValueError(f"profile must be one of {PROFILES}, not {s.profile!r}")
        return s


@dataclass
class Decision:
    """What to do with one pod: JSONPatch operations and warnings for the user."""

    patch: list[Json] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    reason: str = ""


def _escape(key: str) -> str:
    """A JSON Pointer token (RFC 6901): '~' -> '~0', '/' -> '~1'."""
    return key.replace("~", "~0").replace("/", "~1")


def _int_or_none(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def app_identity(pod: Json) -> tuple[int | None, int | None, str]:
    """The app's (uid, gid, where the uid came from).

    Order: the ``borescope.io/uid`` annotation, the first app container's
    securityContext, the pod's securityContext.
    """
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    psc = spec.get("securityContext") or {}
    containers = [
        c for c in spec.get("containers") or [] if c.get("name") != names.SIDECAR_CONTAINER
    ]
    csc = (containers[0].get("securityContext") or {}) if containers else {}
    gid = _int_or_none(csc.get("runAsGroup"))
    gid = gid if gid is not None else _int_or_none(psc.get("runAsGroup"))
    ann = (meta.get("annotations") or {}).get(names.ANN_UID)
    if ann is not None:
        uid = _int_or_none(ann)
        if uid is not None:
            return uid, gid, f"annotation {names.ANN_UID}"
    uid = _int_or_none(csc.get("runAsUser"))
    if uid is not None:
        return uid, gid, f"container {containers[0].get('name')} securityContext"
    uid = _int_or_none(psc.get("runAsUser"))
    if uid is not None:
        return uid, gid, "pod securityContext"
    return None, gid, ""


def sidecar_container(pod: Json, settings: Settings, profile: str) -> tuple[Json, list[str]]:
    """The container to add, and warnings about what it will not be able to see."""
    warnings: list[str] = []
    uid, gid, _source = app_identity(pod)
    meta = pod.get("metadata") or {}
    sc: Json = {
        "allowPrivilegeEscalation": False,
        "privileged": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    if profile == "privileged":
        # Added capabilities are only effective for root (Kubernetes sets no
        # ambient capabilities), so this profile runs the sidecar as root.
        sc["capabilities"]["add"] = ["SYS_PTRACE"]
        sc["runAsUser"] = 0
        sc["runAsNonRoot"] = False
        warnings.append(
            "borescope: privileged profile: the sidecar runs as root with SYS_PTRACE "
            "(outside Pod Security 'baseline')"
        )
    elif uid is None:
        sc["runAsNonRoot"] = True
        warnings.append(
            f"borescope: the app's UID is not in the pod spec; the sidecar runs as its image's "
            f"user and may not see the app's files: set annotation {names.ANN_UID}"
        )
    else:
        sc["runAsUser"] = uid
        sc["runAsNonRoot"] = uid != 0
        if gid is not None:
            sc["runAsGroup"] = gid
        if uid == 0:
            warnings.append(
                "borescope: the app runs as root, so the sidecar does too (all capabilities dropped)"
            )
    token_secret = str(
        (meta.get("annotations") or {}).get(names.ANN_TOKEN_SECRET) or settings.token_secret
    )
    env: list[Json] = [
        # Containers share the pod's network namespace: avoid a declared port.
        {"name": "BORESCOPE_LISTEN", "value": f"127.0.0.1:{free_port(pod, settings.port)}"},
        {"name": "BORESCOPE_POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {
            "name": "BORESCOPE_NAMESPACE",
            "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}},
        },
        {"name": "BORESCOPE_NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
    ]
    if token_secret:
        env.append(
            {
                "name": "BORESCOPE_TOKEN_SHA256",
                "valueFrom": {
                    "secretKeyRef": {
                        "name": token_secret,
                        "key": names.TOKEN_HASH_KEY,
                        # A missing Secret must not keep the app from starting;
                        # the sidecar then serves loopback only, gated by RBAC.
                        "optional": True,
                    }
                },
            }
        )
    if settings.health_port:
        env.append({"name": "BORESCOPE_HEALTH_LISTEN", "value": f"0.0.0.0:{settings.health_port}"})
    env += [{"name": k, "value": v} for k, v in sorted(settings.extra_env.items())]
    container: Json = {
        "name": names.SIDECAR_CONTAINER,
        "image": settings.image,
        "imagePullPolicy": settings.image_pull_policy,
        "env": env,
        "resources": {"requests": dict(settings.requests)},
        "securityContext": sc,
        "volumeMounts": [{"name": names.TMP_VOLUME, "mountPath": "/tmp"}],  # noqa: S108 (the pod's own emptyDir)
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    if settings.command:
        container["command"] = list(settings.command)
    if settings.args:
        container["args"] = list(settings.args)
    if settings.limits:
        container["resources"]["limits"] = dict(settings.limits)
    if settings.health_port:
        container["ports"] = [{"name": "bs-health", "containerPort": settings.health_port}]
        container["readinessProbe"] = {
            "grpc": {"port": settings.health_port},
            "periodSeconds": 10,
        }
    return container, warnings


def skip_reason(pod: Json, namespace: str, operation: str, settings: Settings) -> str:
    """Why ``pod`` must be left alone ("" when it should get the sidecar)."""
    meta = pod.get("metadata") or {}
    labels = meta.get("labels") or {}
    spec = pod.get("spec") or {}
    if operation != "CREATE":
        return f"operation {operation}"
    if namespace in settings.excluded_namespaces:
        return f"namespace {namespace} is excluded"
    if labels.get(names.LABEL_ROLE) == names.ROLE_INJECTOR:
        return "the injector's own pod"
    if (
        settings.own_namespace
        and namespace == settings.own_namespace
        and labels.get("app.kubernetes.io/name") == "borescope"
    ):
        return "a pod of the borescope release itself"
    if str(labels.get(names.LABEL_INJECT, "")).lower() != "true":
        return f"no {names.LABEL_INJECT}=true label"
    if (meta.get("annotations") or {}).get(names.ANN_STATUS) == names.STATUS_INJECTED:
        return "already injected"
    containers = [*(spec.get("containers") or []), *(spec.get("initContainers") or [])]
    if names.SIDECAR_CONTAINER in [c.get("name") for c in containers]:
        return "already has a borescope container"
    return ""


def choose_profile(annotations: Json, settings: Settings) -> tuple[str, list[str]]:
    """The profile for a pod: the chart's, or the pod's annotation where allowed."""
    wanted = annotations.get(names.ANN_PROFILE)
    if not wanted or wanted == settings.profile:
        return settings.profile, []
    if wanted == "privileged" and not settings.allow_privileged_annotation:
        return settings.profile, [
            f"borescope: {names.ANN_PROFILE}=privileged ignored: the chart does not allow "
            "it (injector.allowPrivilegedAnnotation)"
        ]
    if wanted in PROFILES:
        return str(wanted), []
    return settings.profile, [f"borescope: unknown profile {wanted!r} ignored"]


def _unfit(spec: Json) -> str:
    """Why a labelled pod cannot take the sidecar ("" when it can)."""
    if spec.get("hostPID"):
        # The API rejects shareProcessNamespace together with hostPID.
        return "the pod uses hostPID, which cannot be combined with shareProcessNamespace"
    if str((spec.get("os") or {}).get("name", "")).lower() == "windows":
        return "Windows pods have no shared process namespace"
    return ""


def free_port(pod: Json, wanted: int) -> int:
    """``wanted``, or the next port no container of ``pod`` declares."""
    spec = pod.get("spec") or {}
    declared = {
        p.get("containerPort")
        for c in [*(spec.get("containers") or []), *(spec.get("initContainers") or [])]
        for p in c.get("ports") or []
    }
    port = wanted
    while port in declared:
        port += 1
    return port


def decide(pod: Json, namespace: str, operation: str, settings: Settings) -> Decision:
    """Whether and how to change ``pod``; an empty patch means leave it alone."""
    reason = skip_reason(pod, namespace, operation, settings)
    if reason:
        return Decision(reason=reason)
    annotations = (pod.get("metadata") or {}).get("annotations") or {}
    spec = pod.get("spec") or {}
    unfit = _unfit(spec)
    if unfit:
        # The label asked for the sidecar, so say why it was not added.
        return Decision(reason=unfit, warnings=[f"borescope: not injected: {unfit}"])
    profile, warnings = choose_profile(annotations, settings)
    container, more = sidecar_container(pod, settings, profile)
    warnings += more
    volume = {"name": names.TMP_VOLUME, "emptyDir": {"sizeLimit": settings.tmp_size_limit}}
    patch: list[Json] = [
        {"op": "add", "path": "/spec/shareProcessNamespace", "value": True},
        {"op": "add", "path": "/spec/containers/-", "value": container},
    ]
    if spec.get("volumes"):
        patch.append({"op": "add", "path": "/spec/volumes/-", "value": volume})
    else:
        patch.append({"op": "add", "path": "/spec/volumes", "value": [volume]})
    if annotations:
        patch.append(
            {
                "op": "add",
                "path": f"/metadata/annotations/{_escape(names.ANN_STATUS)}",
                "value": names.STATUS_INJECTED,
            }
        )
    else:
        patch.append(
            {
                "op": "add",
                "path": "/metadata/annotations",
                "value": {names.ANN_STATUS: names.STATUS_INJECTED},
            }
        )
    return Decision(patch=patch, warnings=warnings, reason=f"injected ({profile})")


def review(doc: Json, settings: Settings) -> Json:
    """Answer an AdmissionReview v1 request.

    Raises:
        ValueError: not an AdmissionReview v1 request (the server answers 400).
    """
    if doc.get("apiVersion") != "admission.k8s.io/v1" or doc.get("kind") != "AdmissionReview":
        raise ValueError("expected an admission.k8s.io/v1 AdmissionReview")
    req = doc.get("request")
    if not isinstance(req, dict) or not req.get("uid"):
        raise ValueError("AdmissionReview has no request.uid")
    response: Json = {"uid": req["uid"], "allowed": True}
    kind = req.get("kind") or {}
    pod = req.get("object")
    if kind.get("kind") == "Pod" and not req.get("subResource") and isinstance(pod, dict):
        decision = decide(pod, str(req.get("namespace") or ""), str(req.get("operation")), settings)
        if decision.patch:
            response["patchType"] = "JSONPatch"
            response["patch"] = base64.b64encode(json.dumps(decision.patch).encode()).decode()
        if decision.warnings:
            response["warnings"] = decision.warnings
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response}
