"""Keep the webhook configuration's caBundle equal to the injector's CA.

With self-generated certificates the chart writes caBundle at install time;
if the Secret is later replaced (a re-install, a manual rotation), the API
server would stop trusting the injector and, with failurePolicy Ignore,
silently stop injecting. The injector therefore checks its own
MutatingWebhookConfiguration at start-up and after every certificate reload,
and patches caBundle when it differs. It can do exactly that and nothing else
(RBAC: get/patch on that one object, by resourceNames).
"""

from __future__ import annotations

import base64
import json
import threading
from typing import Any

import structlog
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

log = structlog.get_logger("borescope.injector")

RETRY_FIRST_S = 1.0
RETRY_MAX_S = 60.0


def sync_ca_bundle(api_client: k8s.ApiClient, name: str, ca_pem: bytes) -> int:
    """Patch every webhook of ``name`` whose caBundle is not ``ca_pem``.

    The patch starts with a JSONPatch ``test`` of resourceVersion, so a
    concurrent change (cert-manager, a helm upgrade) makes it fail rather
    than be overwritten.

    Returns:
        How many webhooks were patched (0 = already in step).

    Raises:
        ApiException: the API refused (403 names missing RBAC) or failed.
    """
    api = k8s.AdmissionregistrationV1Api(api_client)
    resp: Any = api.read_mutating_webhook_configuration(name, _preload_content=False)
    doc: dict[str, Any] = json.loads(resp.data)
    want = base64.b64encode(ca_pem).decode()
    ops: list[dict[str, Any]] = []
    for i, hook in enumerate(doc.get("webhooks") or []):
        if (hook.get("clientConfig") or {}).get("caBundle") != want:
            ops.append({"op": "add", "path": f"/webhooks/{i}/clientConfig/caBundle", "value": want})
    if not ops:
        return 0
    version = (doc.get("metadata") or {}).get("resourceVersion", "")
    patch = [{"op": "test", "path": "/metadata/resourceVersion", "value": version}, *ops]
    api.patch_mutating_webhook_configuration(
        name, patch, _content_type="application/json-patch+json", _preload_content=False
    )
    return len(ops)


class CaBundleKeeper:
    """Runs ``sync_ca_bundle`` in the background, retrying with backoff until it succeeds.

    Args:
        api_client: a private ApiClient (in-cluster credentials).
        name: the MutatingWebhookConfiguration's name.
        ca_file: the CA certificate the webhook's clients must trust.
    """

    def __init__(self, api_client: k8s.ApiClient, name: str, ca_file: str) -> None:
        self.api_client = api_client
        self.name = name
        self.ca_file = ca_file
        self.synced = threading.Event()
        """Set once the configuration is known to be in step."""
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cabundle", daemon=True)

    def start(self) -> CaBundleKeeper:
        self._thread.start()
        return self

    def poke(self) -> None:
        """Check again (the certificate files changed)."""
        self.synced.clear()
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=5)

    def _once(self) -> bool:
        try:
            with open(self.ca_file, "rb") as f:
                ca = f.read()
            patched = sync_ca_bundle(self.api_client, self.name, ca)
        except OSError as e:
            log.warning("cannot read the CA file", path=self.ca_file, error=str(e))
            return False
        except HTTPError as e:
            log.warning("cannot reach the API server; retrying", error=str(e))
            return False
        except ApiException as e:
            hint = (
                f"needs get and patch on mutatingwebhookconfigurations/{self.name}"
                if e.status == 403
                else (e.reason or "")
            )
            log.warning("caBundle check failed; retrying", status=e.status, hint=hint)
            return False
        if patched:
            log.info("caBundle updated", webhook_configuration=self.name, webhooks=patched)
        self.synced.set()
        return True

    def _run(self) -> None:
        delay = RETRY_FIRST_S
        while not self._stop.is_set():
            self._wake.clear()
            if self._once():
                delay = RETRY_FIRST_S
                self._wake.wait()
            else:
                self._wake.wait(delay)
                delay = min(delay * 2, RETRY_MAX_S)
