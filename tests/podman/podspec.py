"""The pod podman runs: a sample app pod, injected by the injector's own code.

The sidecar container, ``shareProcessNamespace``, the /tmp emptyDir and the
token Secret reference come from ``sidecar.injector.mutate.decide`` (the code
the chart's webhook runs), applied as the JSONPatch the API server would
apply. Only two things are adapted for podman 4.3, each as a kubelet would
do it:

- the downward-API env values podman cannot resolve (``metadata.namespace``,
  ``spec.nodeName``) are replaced by the values a kubelet would inject;
- the token Secret is created with ``podman secret create`` in the form
  podman's ``secretKeyRef`` lookup reads (a JSON map of base64 values; the
  ``kind: Secret`` podman 4.3's kube play creates is not readable by its own
  ``secretKeyRef``).
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import secrets
import socket
from dataclasses import dataclass
from typing import Any

import jsonpatch

from sidecar.injector import names
from sidecar.injector.mutate import Decision, Settings, decide

Json = dict[str, Any]

NAMESPACE = "default"
APP_UID = 10001
APP_PORT = 8080
APP_CONTAINER = "app"


@dataclass(frozen=True)
class Token:
    """A bearer token and its SHA-256 hex (what the sidecar is given)."""

    value: str
    sha256: str

    @classmethod
    def new(cls) -> Token:
        value = secrets.token_urlsafe(24)
        return cls(value, hashlib.sha256(value.encode()).hexdigest())


def sample_pod(name: str, app_image: str) -> Json:
    """An app pod as a user would write it: one distroless container, labelled for injection."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": NAMESPACE,
            "labels": {"app": "demo", names.LABEL_INJECT: "true"},
        },
        "spec": {
            "restartPolicy": "Always",
            "containers": [
                {
                    "name": APP_CONTAINER,
                    "image": app_image,
                    "ports": [{"name": "http", "containerPort": APP_PORT}],
                    "securityContext": {"runAsUser": APP_UID, "runAsGroup": APP_UID},
                }
            ],
        },
    }


def inject(pod: Json, sidecar_image: str, token_secret: str) -> tuple[Json, Decision]:
    """``pod`` after the injector's decision, with the chart's default settings.

    Raises:
        AssertionError: the injector declined to inject (the reason is given).
    """
    settings = Settings(image=sidecar_image, token_secret=token_secret)
    decision = decide(pod, NAMESPACE, "CREATE", settings)
    assert decision.patch, f"the injector did not inject: {decision.reason}"
    return jsonpatch.apply_patch(pod, decision.patch), decision


def resolve_downward_api(pod: Json, node_name: str | None = None) -> Json:
    """A copy of ``pod`` whose namespace and node fieldRefs are literal values.

    podman 4.3 refuses ``fieldPath: metadata.namespace`` and ``spec.nodeName``
    ("either not valid or not supported"); a kubelet would inject these values,
    so this does the same. ``metadata.name`` is left to podman (it supports it).
    """
    values = {
        "metadata.namespace": pod["metadata"].get("namespace", NAMESPACE),
        "spec.nodeName": node_name or socket.gethostname(),
    }
    out = copy.deepcopy(pod)
    for container in out["spec"]["containers"]:
        for env in container.get("env") or []:
            path = ((env.get("valueFrom") or {}).get("fieldRef") or {}).get("fieldPath")
            if path in values:
                env.pop("valueFrom")
                env["value"] = values[path]
    return out


def secret_payload(token: Token) -> bytes:
    """The token Secret's data (keys ``token`` and ``sha256``) as podman's secretKeyRef reads it."""
    data = {
        names.TOKEN_KEY: token.value.encode(),
        names.TOKEN_HASH_KEY: token.sha256.encode(),
    }
    return json.dumps({k: base64.b64encode(v).decode() for k, v in data.items()}).encode()


def container(pod: Json, name: str) -> Json:
    """The container called ``name`` in ``pod``.

    Raises:
        KeyError: no such container.
    """
    for c in pod["spec"]["containers"]:
        if c["name"] == name:
            return dict(c)
    raise KeyError(name)
