"""Kubernetes API failures turned into one line a person can act on.

A 403 names the verb and resource that RBAC is missing ("needs create on
pods/portforward in namespace X"), with the ``kubectl auth can-i`` line that
checks it. Websocket calls (port-forward, exec) fail inside websocket-client,
which the kubernetes client rewraps as ``ApiException(status=0)``; the real
HTTP status is recovered from the chained exception.
"""

from __future__ import annotations

import json
from typing import Any

from kubernetes.client.exceptions import ApiException


class KubeError(Exception):
    """A Kubernetes-side failure; the message says what to do about it.

    Attributes:
        status: the HTTP status behind it (0 when there was none).
    """

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


def _status_and_body(err: BaseException) -> tuple[int, str]:
    """The HTTP status and body of an API failure (0, "" when there was none)."""
    if isinstance(err, ApiException) and err.status:
        body = (
            err.body if isinstance(err.body, str) else (err.body or b"").decode("utf-8", "replace")
        )
        return int(err.status), body
    # websocket-client's WebSocketBadStatusException, chained by the kubernetes
    # client's `raise ApiException(status=0, reason=str(e))` inside `except`.
    inner: BaseException | None = err
    while inner is not None:
        code = getattr(inner, "status_code", None)
        if isinstance(code, int) and code:
            raw = getattr(inner, "resp_body", b"") or b""
            body = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
            return code, body
        inner = inner.__cause__ or inner.__context__
    return 0, ""


def _status_message(body: str) -> str:
    """The ``message`` of a metav1.Status body, or the body itself (trimmed)."""
    try:
        doc: Any = json.loads(body)
    except ValueError:
        return body.strip()[:300]
    if isinstance(doc, dict) and isinstance(doc.get("message"), str):
        return str(doc["message"])
    return body.strip()[:300]


def http_status(err: BaseException) -> int:
    """The HTTP status behind ``err`` (0 for a transport failure)."""
    return _status_and_body(err)[0]


def explain(
    err: BaseException, verb: str, resource: str, namespace: str, name: str = ""
) -> KubeError:
    """Turn an API failure into a KubeError naming what was attempted.

    Args:
        err: the exception the kubernetes client raised.
        verb: the RBAC verb of the call (get, list, create, patch).
        resource: the RBAC resource, with subresource (pods/portforward).
        namespace: where the call went.
        name: the object's name, when there is one.
    """
    status, body = _status_and_body(err)
    # "pods/log" -> "pod NAME", "deployments" -> "deployment NAME"
    what = f"{resource.split('/', maxsplit=1)[0].removesuffix('s')} {name}".strip()
    if status == 403:
        return KubeError(
            status=403,
            message=f"forbidden: needs {verb} on {resource} in namespace {namespace} "
            f"(check: kubectl auth can-i {verb} {resource} -n {namespace})",
        )
    if status == 401:
        return KubeError(
            status=401,
            message="the API server rejected the credentials (401): the kubeconfig token or "
            "certificate has expired or is wrong; log in again",
        )
    if status == 404:
        return KubeError(f"{what} not found in namespace {namespace}", 404)
    if status:
        return KubeError(
            f"{verb} {resource} {name} failed ({status}): {_status_message(body)}", status
        )
    reason = getattr(err, "reason", None) or str(err)
    return KubeError(f"cannot reach the Kubernetes API for {verb} {resource}: {reason}")
