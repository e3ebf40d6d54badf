"""The injector keeps its webhook configuration's caBundle in step (fake API server edge)."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from sidecar.injector.cabundle import CaBundleKeeper, sync_ca_bundle
from tests.integration.fake_apiserver import FakeApiServer

NAME = "bs-borescope"


def webhook_config(ca: bytes) -> dict[str, object]:
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": NAME, "resourceVersion": "41"},
        "webhooks": [
            {
                "name": "inject.borescope.io",
                "admissionReviewVersions": ["v1"],
                "sideEffects": "None",
                "clientConfig": {
                    "service": {
                        "name": "bs-borescope-injector",
                        "namespace": "borescope",
                        "path": "/mutate",
                        "port": 443,
                    },
                    "caBundle": base64.b64encode(ca).decode(),
                },
            }
        ],
    }


@pytest.fixture
def api() -> Iterator[tuple[FakeApiServer, k8s.ApiClient]]:
    srv = FakeApiServer().start()
    cfg = type.__call__(k8s.Configuration)
    cfg.host = srv.url
    cfg.api_key = {"BearerToken": srv.state.token}
    cfg.api_key_prefix = {"BearerToken": "Bearer"}
    client = k8s.ApiClient(configuration=cfg)
    yield srv, client
    client.close()
    srv.stop()


def test_stale_ca_bundle_is_patched_once(api: tuple[FakeApiServer, k8s.ApiClient]) -> None:
    """A differing caBundle is replaced with the CA file's (guarded by a resourceVersion
    test), and a second check changes nothing."""
    srv, client = api
    srv.state.webhook_configs[NAME] = webhook_config(b"old CA")
    assert sync_ca_bundle(client, NAME, b"new CA") == 1
    hook = srv.state.webhook_configs[NAME]["webhooks"][0]
    assert base64.b64decode(hook["clientConfig"]["caBundle"]) == b"new CA"
    patch = srv.state.seen("PATCH", "/mutatingwebhookconfigurations/")[0]
    assert patch["headers"]["content-type"] == "application/json-patch+json"
    assert b'"op": "test", "path": "/metadata/resourceVersion", "value": "41"' in patch["body"]
    assert sync_ca_bundle(client, NAME, b"new CA") == 0
    assert len(srv.state.seen("PATCH", "/mutatingwebhookconfigurations/")) == 1


def test_keeper_retries_until_rbac_allows(
    api: tuple[FakeApiServer, k8s.ApiClient], tmp_path: Path
) -> None:
    """Refused (403) at first, the keeper retries with backoff and succeeds once allowed;
    poke() after a certificate change makes it check again."""
    srv, client = api
    srv.state.webhook_configs[NAME] = webhook_config(b"old CA")
    srv.state.forbidden.add(("get", "mutatingwebhookconfigurations"))
    ca = tmp_path / "ca.crt"
    ca.write_bytes(b"CA one")
    keeper = CaBundleKeeper(client, NAME, str(ca)).start()
    try:
        assert not keeper.synced.wait(0.5)
        srv.state.forbidden.clear()
        assert keeper.synced.wait(5)
        ca.write_bytes(b"CA two")
        keeper.poke()
        assert keeper.synced.wait(5)
        hook = srv.state.webhook_configs[NAME]["webhooks"][0]
        assert base64.b64decode(hook["clientConfig"]["caBundle"]) == b"CA two"
    finally:
        keeper.stop()


def test_missing_configuration_raises(api: tuple[FakeApiServer, k8s.ApiClient]) -> None:
    """A webhook configuration that does not exist is an ApiException (404), not a crash."""
    _, client = api
    with pytest.raises(ApiException) as e:
        sync_ca_bundle(client, "nope", b"x")
    assert e.value.status == 404
