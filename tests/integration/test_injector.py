"""The injector on real AdmissionReview v1 JSON, and its HTTPS server on a real socket.

Each review is shaped as the API server sends it (a ReplicaSet's pod with
generateName and no name yet); each JSONPatch is applied with the
``jsonpatch`` library and the result validated against the Kubernetes Pod
schema (kubernetes-validate), as the API server would after mutation.
"""

from __future__ import annotations

import base64
import copy
import http.client
import json
import os
import ssl
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonpatch
import kubernetes_validate
import pytest

from sidecar.injector import names
from sidecar.injector.mutate import Settings, review
from sidecar.injector.server import InjectorServer
from tui.kube import names as client_names

K8S_VERSION = "1.34"
SETTINGS = Settings(image="registry.example/borescope:0.1.0", token_secret="borescope-token")


def pod(
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
    containers: list[dict[str, Any]] | None = None,
    security: dict[str, Any] | None = None,
    volumes: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A pod as a ReplicaSet creates it (no name yet, generateName set)."""
    meta: dict[str, Any] = {
        "generateName": "web-7d4b9c-",
        "namespace": "shop",
        "labels": {"app": "web", "pod-template-hash": "7d4b9c", **(labels or {})},
        "ownerReferences": [
            {
                "apiVersion": "apps/v1",
                "kind": "ReplicaSet",
                "name": "web-7d4b9c",
                "uid": str(uuid.uuid4()),
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ],
    }
    if annotations is not None:
        meta["annotations"] = annotations
    spec: dict[str, Any] = {
        "containers": containers
        or [
            {
                "name": "app",
                "image": "registry.example/app:1.4",
                "ports": [{"containerPort": 8080, "protocol": "TCP"}],
                "resources": {},
            }
        ],
        "restartPolicy": "Always",
        "terminationGracePeriodSeconds": 30,
        "dnsPolicy": "ClusterFirst",
        "serviceAccountName": "default",
        "securityContext": security or {},
        "schedulerName": "default-scheduler",
    }
    if volumes is not None:
        spec["volumes"] = volumes
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec}


def admission_review(
    obj: dict[str, Any], namespace: str = "shop", operation: str = "CREATE"
) -> dict[str, Any]:
    """An AdmissionReview v1 request exactly as the API server posts it."""
    gvk = {"group": "", "version": "v1", "kind": "Pod"}
    gvr = {"group": "", "version": "v1", "resource": "pods"}
    return {
        "kind": "AdmissionReview",
        "apiVersion": "admission.k8s.io/v1",
        "request": {
            "uid": str(uuid.uuid4()),
            "kind": gvk,
            "resource": gvr,
            "requestKind": gvk,
            "requestResource": gvr,
            "name": "",
            "namespace": namespace,
            "operation": operation,
            "userInfo": {
                "username": "system:serviceaccount:kube-system:replicaset-controller",
                "uid": str(uuid.uuid4()),
                "groups": ["system:serviceaccounts", "system:authenticated"],
            },
            "object": obj,
            "oldObject": None,
            "dryRun": False,
            "options": {"kind": "CreateOptions", "apiVersion": "meta.k8s.io/v1"},
        },
    }


def mutate(
    obj: dict[str, Any], namespace: str = "shop", settings: Settings = SETTINGS
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Review ``obj``; return (the response, the pod with the patch applied)."""
    req = admission_review(obj, namespace)
    out = review(req, settings)
    assert out["apiVersion"] == "admission.k8s.io/v1" and out["kind"] == "AdmissionReview"
    resp = out["response"]
    assert resp["uid"] == req["request"]["uid"] and resp["allowed"] is True
    if "patch" not in resp:
        return resp, obj
    assert resp["patchType"] == "JSONPatch"
    ops = json.loads(base64.b64decode(resp["patch"]))
    patched = jsonpatch.apply_patch(copy.deepcopy(obj), ops)
    checkable = copy.deepcopy(patched)
    checkable["metadata"]["name"] = "web-7d4b9c-abcde"  # the API server fills generateName in
    kubernetes_validate.validate(checkable, K8S_VERSION, strict=True)
    return resp, patched


def sidecar_of(p: dict[str, Any]) -> dict[str, Any]:
    return next(c for c in p["spec"]["containers"] if c["name"] == "borescope")


LABEL = {"borescope.io/inject": "true"}


def test_labelled_pod_gets_the_sidecar_safe_by_default() -> None:
    """With the label: shared PID namespace, the sidecar dropping ALL capabilities,
    read-only root, seccomp RuntimeDefault, /tmp emptyDir, small requests, loopback,
    token hash from the Secret, status annotation; the app container untouched."""
    original = pod(LABEL, security={"runAsUser": 1000, "runAsGroup": 3000})
    resp, p = mutate(original)
    assert p["spec"]["shareProcessNamespace"] is True
    assert p["spec"]["containers"][0] == original["spec"]["containers"][0]
    sc = sidecar_of(p)
    sec = sc["securityContext"]
    assert sec["capabilities"] == {"drop": ["ALL"]}
    assert sec["readOnlyRootFilesystem"] is True and sec["allowPrivilegeEscalation"] is False
    assert sec["seccompProfile"] == {"type": "RuntimeDefault"}
    assert sec["runAsUser"] == 1000 and sec["runAsGroup"] == 3000 and sec["runAsNonRoot"] is True
    assert sc["resources"] == {"requests": {"cpu": "10m", "memory": "32Mi"}}
    assert {"name": "borescope-tmp", "mountPath": "/tmp"} in sc["volumeMounts"]
    assert {"name": "borescope-tmp", "emptyDir": {"sizeLimit": "64Mi"}} in p["spec"]["volumes"]
    env = {e["name"]: e for e in sc["env"]}
    assert env["BORESCOPE_LISTEN"]["value"] == "127.0.0.1:7777"
    assert env["BORESCOPE_TOKEN_SHA256"]["valueFrom"]["secretKeyRef"] == {
        "name": "borescope-token",
        "key": "sha256",
        "optional": True,
    }
    assert p["metadata"]["annotations"] == {"borescope.io/status": "injected"}
    assert "warnings" not in resp


def test_pod_without_label_is_untouched() -> None:
    """No label (or inject=false): allowed, no patch."""
    for labels in (None, {"borescope.io/inject": "false"}):
        resp, _ = mutate(pod(labels))
        assert "patch" not in resp and resp["allowed"] is True


def test_already_injected_pod_is_untouched_and_second_pass_is_a_no_op() -> None:
    """Reviewing the mutated pod again (reinvocation) changes nothing."""
    _, once = mutate(pod(LABEL, security={"runAsUser": 1000}))
    resp, twice = mutate(once)
    assert "patch" not in resp and twice == once
    resp, _ = mutate(pod(LABEL, annotations={"borescope.io/status": "injected"}))
    assert "patch" not in resp


def test_several_containers_and_existing_volumes_and_annotations() -> None:
    """With several app containers, the sidecar takes the first app container's UID;
    existing volumes and annotations are kept and extended, not replaced."""
    containers = [
        {"name": "app", "image": "app:1", "securityContext": {"runAsUser": 2000}},
        {"name": "proxy", "image": "envoy:1", "securityContext": {"runAsUser": 101}},
    ]
    vols = [{"name": "data", "emptyDir": {}}]
    _, p = mutate(pod(LABEL, annotations={"team": "payments"}, containers=containers, volumes=vols))
    assert [c["name"] for c in p["spec"]["containers"]] == ["app", "proxy", "borescope"]
    assert sidecar_of(p)["securityContext"]["runAsUser"] == 2000
    assert [v["name"] for v in p["spec"]["volumes"]] == ["data", "borescope-tmp"]
    assert p["metadata"]["annotations"] == {"team": "payments", "borescope.io/status": "injected"}


def test_run_as_non_root_pod_keeps_the_restricted_rules() -> None:
    """A runAsNonRoot pod: the sidecar runs as the pod's UID with runAsNonRoot: true."""
    _, p = mutate(pod(LABEL, security={"runAsNonRoot": True, "runAsUser": 65532, "fsGroup": 65532}))
    sec = sidecar_of(p)["securityContext"]
    assert sec["runAsUser"] == 65532 and sec["runAsNonRoot"] is True
    assert "add" not in sec["capabilities"]


def test_uid_annotation_wins_and_unknown_uid_warns() -> None:
    """borescope.io/uid overrides the spec; with no UID anywhere the user is warned."""
    _, p = mutate(pod(LABEL, annotations={"borescope.io/uid": "4242"}, security={"runAsUser": 1}))
    assert sidecar_of(p)["securityContext"]["runAsUser"] == 4242
    resp, p = mutate(pod(LABEL, security={"runAsNonRoot": True}))
    assert "runAsUser" not in sidecar_of(p)["securityContext"]
    assert any("borescope.io/uid" in w for w in resp["warnings"])


def test_kube_system_and_own_pods_are_never_injected() -> None:
    """kube-system pods and the injector's own pods are left alone even with the label."""
    resp, _ = mutate(pod(LABEL), namespace="kube-system")
    assert "patch" not in resp
    resp, _ = mutate(pod({**LABEL, "borescope.io/role": "injector"}))
    assert "patch" not in resp


def test_privileged_profile_is_explicit_and_warned() -> None:
    """The privileged profile adds SYS_PTRACE as root and says it is outside baseline;
    a pod cannot opt into it unless the chart allows the annotation."""
    priv = Settings(image="x:1", profile="privileged")
    resp, p = mutate(pod(LABEL), settings=priv)
    sec = sidecar_of(p)["securityContext"]
    assert sec["capabilities"] == {"drop": ["ALL"], "add": ["SYS_PTRACE"]}
    assert sec["runAsUser"] == 0
    assert any("baseline" in w for w in resp["warnings"])
    ann = {"borescope.io/profile": "privileged"}
    resp, p = mutate(pod(LABEL, annotations=ann, security={"runAsUser": 7}))
    assert "add" not in sidecar_of(p)["securityContext"]["capabilities"]
    assert any("allowPrivilegedAnnotation" in w for w in resp["warnings"])
    allowed = Settings(image="x:1", allow_privileged_annotation=True)
    _, p = mutate(pod(LABEL, annotations=ann), settings=allowed)
    assert sidecar_of(p)["securityContext"]["capabilities"]["add"] == ["SYS_PTRACE"]


def test_update_and_subresources_are_allowed_unchanged() -> None:
    """Only CREATE is mutated: an UPDATE is allowed with no patch."""
    req = admission_review(pod(LABEL), operation="UPDATE")
    assert "patch" not in review(req, SETTINGS)["response"]


def test_client_and_injector_agree_on_names() -> None:
    """tui/kube/names.py and sidecar/injector/names.py carry the same values."""
    for key in dir(client_names):
        if key.isupper():
            assert getattr(names, key) == getattr(client_names, key), key


# --- the HTTPS server ------------------------------------------------------


def make_cert(directory: Path, cn: str) -> tuple[str, str]:
    """A self-signed cert+key for ``cn`` (with a SAN, as the API server requires)."""
    cert, key = directory / "tls.crt", directory / "tls.key"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            f"/CN={cn}",
            "-addext",
            f"subjectAltName=DNS:{cn}",
            "-keyout",
            str(key) + ".new",
            "-out",
            str(cert) + ".new",
        ],
        check=True,
        capture_output=True,
    )
    os.replace(str(key) + ".new", key)
    os.replace(str(cert) + ".new", cert)
    return str(cert), str(key)


@pytest.fixture
def injector(tmp_path: Path) -> Iterator[tuple[InjectorServer, str]]:
    cert, key = make_cert(tmp_path, "borescope-injector.borescope.svc")
    server = InjectorServer(("127.0.0.1", 0), SETTINGS, cert, key)
    t = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    t.start()
    yield server, cert
    server.shutdown()
    server.server_close()


def _conn(server: InjectorServer, cert: str) -> http.client.HTTPSConnection:
    ctx = ssl.create_default_context(cafile=cert)
    ctx.check_hostname = False  # the name is checked by SAN below, not by 127.0.0.1
    return http.client.HTTPSConnection("127.0.0.1", server.port, context=ctx, timeout=5)


def test_https_round_trip(injector: tuple[InjectorServer, str]) -> None:
    """POST /mutate over TLS answers the review; /healthz is ok; garbage is a 400."""
    server, cert = injector
    conn = _conn(server, cert)
    body = json.dumps(admission_review(pod(LABEL, security={"runAsUser": 1000})))
    conn.request("POST", "/mutate?timeout=5s", body, {"Content-Type": "application/json"})
    r = conn.getresponse()
    out = json.loads(r.read())
    assert r.status == 200 and out["response"]["patchType"] == "JSONPatch"
    conn.request("GET", "/healthz")
    r = conn.getresponse()
    assert r.status == 200 and r.read() == b"ok\n"
    conn.request("POST", "/mutate", b"{not json", {"Content-Type": "application/json"})
    r = conn.getresponse()
    assert r.status == 400 and b"error" in r.read()
    conn.close()


def test_renewed_certificate_is_picked_up_without_restart(
    injector: tuple[InjectorServer, str], tmp_path: Path
) -> None:
    """When the cert files are replaced (cert-manager renewal), new handshakes use the new cert."""
    server, _old_cert = injector
    server.certs.check_interval_s = 0.0
    time.sleep(0.01)
    new_cert, _ = make_cert(tmp_path, "renewed.borescope.svc")
    conn = _conn(server, new_cert)
    conn.request("GET", "/healthz")
    assert conn.getresponse().status == 200
    peer = conn.sock.getpeercert()
    assert peer is not None
    assert ("DNS", "renewed.borescope.svc") in peer["subjectAltName"]
    conn.close()


def test_injector_process_runs_with_the_charts_settings(tmp_path: Path) -> None:
    """`python -m sidecar.injector` started the way the chart starts it (the rendered
    settings.json, TLS files) answers a review, and stops cleanly on SIGTERM."""
    import helm_python as helm
    import yaml

    out = helm.Chart.load(str(Path(__file__).resolve().parents[2] / "charts" / "borescope")).render(
        {}, name="bs", namespace="borescope"
    )
    cm = yaml.safe_load(out["borescope/templates/injector-configmap.yaml"])
    (tmp_path / "settings.json").write_text(cm["data"]["settings.json"])
    cert, key = make_cert(tmp_path, "bs-borescope-injector.borescope.svc")
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "sidecar.injector", "--listen=127.0.0.1:0",
            f"--tls-cert={cert}", f"--tls-key={key}", f"--settings={tmp_path / 'settings.json'}",
            "--own-namespace=borescope",
        ],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        cwd=Path(__file__).resolve().parents[2],
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        port = int(json.loads(line)["address"].rsplit(":", 1)[1])
        ctx = ssl.create_default_context(cafile=cert)
        ctx.check_hostname = False
        conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=5)
        conn.request("POST", "/mutate", json.dumps(admission_review(pod(LABEL))))
        resp = json.loads(conn.getresponse().read())["response"]
        ops = json.loads(base64.b64decode(resp["patch"]))
        container = next(o["value"] for o in ops if o["path"] == "/spec/containers/-")
        assert container["image"] == "ghcr.io/borescope/borescope:0.1.0"
        conn.close()
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0


def test_the_releases_own_pods_are_never_injected() -> None:
    """In the injector's namespace, the release's pods (e.g. the helm test pod) are skipped."""
    own = Settings(image="x:1", own_namespace="borescope")
    resp, _ = mutate(pod({**LABEL, "app.kubernetes.io/name": "borescope"}), "borescope", own)
    assert "patch" not in resp
    resp, _ = mutate(pod(LABEL), "borescope", own)
    assert "patch" in resp


def test_pods_that_cannot_share_processes_are_left_alone_with_a_warning() -> None:
    """hostPID pods (the API rejects shareProcessNamespace with hostPID) and Windows pods
    are not patched, and the user is told why."""
    host_pid = pod(LABEL)
    host_pid["spec"]["hostPID"] = True
    resp, _ = mutate(host_pid)
    assert "patch" not in resp and any("hostPID" in w for w in resp["warnings"])
    windows = pod(LABEL)
    windows["spec"]["os"] = {"name": "windows"}
    resp, _ = mutate(windows)
    assert "patch" not in resp and any("Windows" in w for w in resp["warnings"])


def test_sidecar_port_avoids_ports_the_app_declares() -> None:
    """If the app declares 7777, the sidecar listens on the next free port (same netns)."""
    containers = [
        {"name": "app", "image": "a:1", "ports": [{"containerPort": 7777}, {"containerPort": 7778}]}
    ]
    _, p = mutate(pod(LABEL, containers=containers, security={"runAsUser": 5}))
    env = {e["name"]: e.get("value") for e in sidecar_of(p)["env"]}
    assert env["BORESCOPE_LISTEN"] == "127.0.0.1:7779"
