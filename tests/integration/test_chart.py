"""The Helm chart, rendered and linted by the real Helm engine (helm-python-sdk, offline),
every manifest validated against the Kubernetes schemas (kubernetes-validate).

cert-manager's Certificate and Issuer are CRDs with no schema in
kubernetes-validate; they are checked by shape here and named in the report.
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import helm_python as helm
import kubernetes_validate
import pytest
import yaml

from sidecar.injector.mutate import Settings, sidecar_container

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "borescope"
VALUES = ROOT / "tests" / "charts"
K8S_VERSION = "1.34"
VALUE_FILES = ["defaults", "cert-manager", "cert-manager-issuer", "privileged", "static"]
CRDS = {("cert-manager.io/v1", "Certificate"), ("cert-manager.io/v1", "Issuer")}


def values(name: str) -> dict[str, Any]:
    return yaml.safe_load((VALUES / f"{name}.yaml").read_text()) or {}


def render(vals: dict[str, Any], chart: Path = CHART) -> tuple[list[dict[str, Any]], str]:
    """All manifests (parsed) and NOTES.txt of one offline render."""
    out = helm.Chart.load(str(chart)).render(
        vals, name="bs", namespace="borescope", is_install=True
    )
    docs: list[dict[str, Any]] = []
    notes = ""
    for path, text in sorted(out.items()):
        if path.endswith("NOTES.txt"):
            notes = text
            continue
        docs += [d for d in yaml.safe_load_all(text) if d]
    return docs, notes


def find(docs: list[dict[str, Any]], kind: str, name_part: str = "") -> dict[str, Any]:
    hits = [d for d in docs if d["kind"] == kind and name_part in d["metadata"]["name"]]
    assert len(hits) == 1, f"{kind} {name_part!r}: {len(hits)} found"
    return hits[0]


@pytest.fixture(scope="module")
def rendered() -> dict[str, tuple[list[dict[str, Any]], str]]:
    return {name: render(values(name)) for name in VALUE_FILES}


@pytest.mark.parametrize("name", VALUE_FILES)
def test_lint_is_clean(name: str) -> None:
    """`helm lint --strict` with each values file: no error and no warning."""
    report = helm.lint(str(CHART), values(name), strict=True, namespace="borescope")
    assert report["errors"] == []
    assert [m for m in report["messages"] if m["severity"] >= 2] == []


@pytest.mark.parametrize("name", VALUE_FILES)
def test_every_manifest_passes_the_kubernetes_schema(
    name: str, rendered: dict[str, tuple[list[dict[str, Any]], str]]
) -> None:
    """Each rendered object validates (strict: no unknown fields) against Kubernetes 1.34."""
    docs, _ = rendered[name]
    assert docs
    for doc in docs:
        if (doc["apiVersion"], doc["kind"]) in CRDS:
            assert doc["spec"], doc
            continue
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_defaults_make_a_safe_webhook(
    rendered: dict[str, tuple[list[dict[str, Any]], str]],
) -> None:
    """Default webhook: Ignore, short timeout, objectSelector on the label (not its own
    pods), kube-system excluded, pods CREATE only, v1 reviews, no side effects."""
    docs, notes = rendered["defaults"]
    hook = find(docs, "MutatingWebhookConfiguration")["webhooks"][0]
    assert hook["failurePolicy"] == "Ignore" and hook["timeoutSeconds"] <= 10
    assert hook["sideEffects"] == "None" and hook["admissionReviewVersions"] == ["v1"]
    assert hook["objectSelector"]["matchLabels"] == {"borescope.io/inject": "true"}
    assert {"key": "borescope.io/role", "operator": "NotIn", "values": ["injector"]} in hook[
        "objectSelector"
    ]["matchExpressions"]
    assert "kube-system" in hook["namespaceSelector"]["matchExpressions"][0]["values"]
    assert hook["rules"] == [
        {
            "operations": ["CREATE"],
            "apiGroups": [""],
            "apiVersions": ["v1"],
            "resources": ["pods"],
            "scope": "Namespaced",
        }
    ]
    deploy = find(docs, "Deployment")
    assert deploy["spec"]["template"]["metadata"]["labels"]["borescope.io/role"] == "injector"
    assert "resources" not in deploy["spec"]["template"]["spec"]["containers"][0]
    assert "borescope.io/inject" in notes


def test_self_generated_tls_is_consistent(
    rendered: dict[str, tuple[list[dict[str, Any]], str]], tmp_path: Path
) -> None:
    """caBundle is the Secret's CA, the serving cert chains to it and names the Service,
    and the Deployment's checksum is the cert's (so pods roll when it changes)."""
    docs, _ = rendered["defaults"]
    secret = find(docs, "Secret", "-tls")
    ca = base64.b64decode(secret["data"]["ca.crt"])
    crt = base64.b64decode(secret["data"]["tls.crt"])
    hook = find(docs, "MutatingWebhookConfiguration")["webhooks"][0]
    assert base64.b64decode(hook["clientConfig"]["caBundle"]) == ca
    annotations = find(docs, "Deployment")["spec"]["template"]["metadata"]["annotations"]
    assert annotations["checksum/tls"] == hashlib.sha256(crt).hexdigest()
    (tmp_path / "ca.pem").write_bytes(ca)
    (tmp_path / "crt.pem").write_bytes(crt)
    svc = hook["clientConfig"]["service"]
    res = subprocess.run(
        ["openssl", "verify", "-CAfile", str(tmp_path / "ca.pem"),
         "-verify_hostname", f"{svc['name']}.{svc['namespace']}.svc", str(tmp_path / "crt.pem")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert res.returncode == 0, res.stdout + res.stderr


def test_cert_manager_mode(rendered: dict[str, tuple[list[dict[str, Any]], str]]) -> None:
    """With cert-manager: no generated Secret, the CA is injected by annotation, and the
    Certificate names the Service's DNS; an existing issuer is used as given."""
    docs, _ = rendered["cert-manager"]
    assert not [d for d in docs if d["kind"] == "Secret"]
    webhook = find(docs, "MutatingWebhookConfiguration")
    assert webhook["metadata"]["annotations"]["cert-manager.io/inject-ca-from"] == (
        "borescope/bs-borescope-injector"
    )
    assert "caBundle" not in webhook["webhooks"][0]["clientConfig"]
    cert = next(d for d in docs if d["kind"] == "Certificate" and not d["spec"].get("isCA"))
    assert "bs-borescope-injector.borescope.svc" in cert["spec"]["dnsNames"]
    assert cert["spec"]["secretName"] == "bs-borescope-injector-tls"
    docs, _ = rendered["cert-manager-issuer"]
    assert not [d for d in docs if d["kind"] == "Issuer"]
    cert = find(docs, "Certificate")
    assert cert["spec"]["issuerRef"] == {"name": "company-ca", "kind": "ClusterIssuer"}


def test_rbac_is_minimal(rendered: dict[str, tuple[list[dict[str, Any]], str]]) -> None:
    """The injector may only get/patch its own webhook configuration, by name."""
    docs, _ = rendered["defaults"]
    role = find(docs, "ClusterRole")
    webhook = find(docs, "MutatingWebhookConfiguration")
    assert role["rules"] == [
        {
            "apiGroups": ["admissionregistration.k8s.io"],
            "resources": ["mutatingwebhookconfigurations"],
            "resourceNames": [webhook["metadata"]["name"]],
            "verbs": ["get", "patch"],
        }
    ]
    assert not [d for d in docs if d["kind"] in ("Role", "RoleBinding")]
    pod_spec = find(docs, "Deployment")["spec"]["template"]["spec"]
    assert "--webhook-config=bs-borescope" in pod_spec["containers"][0]["args"]
    # With cert-manager the injector never calls the API: no RBAC, no token mounted.
    docs, _ = rendered["cert-manager"]
    assert not [d for d in docs if d["kind"] in ("ClusterRole", "ClusterRoleBinding")]
    pod_spec = find(docs, "Deployment")["spec"]["template"]["spec"]
    assert pod_spec["automountServiceAccountToken"] is False
    assert not [a for a in pod_spec["containers"][0]["args"] if a.startswith("--webhook-config")]


def test_privileged_is_an_explicit_documented_opt_in(
    rendered: dict[str, tuple[list[dict[str, Any]], str]],
) -> None:
    """profile=privileged reaches the injector's settings and NOTES warns it is outside baseline."""
    docs, notes = rendered["privileged"]
    settings = json.loads(find(docs, "ConfigMap")["data"]["settings.json"])
    assert settings["profile"] == "privileged"
    assert 'outside Pod Security "baseline"' in notes
    docs, _ = rendered["defaults"]
    assert json.loads(find(docs, "ConfigMap")["data"]["settings.json"])["profile"] == "restricted"


def test_static_helper_renders_what_the_injector_adds(
    rendered: dict[str, tuple[list[dict[str, Any]], str]],
) -> None:
    """The _sidecar.tpl container (in the chart's test pod) equals the injector's container
    for the same app UID and settings, so both ways of adding the sidecar agree."""
    docs, _ = rendered["defaults"]
    settings = Settings.from_json(json.loads(find(docs, "ConfigMap")["data"]["settings.json"]))
    test_pod = find(docs, "Pod", "test-health")
    static = dict(test_pod["spec"]["initContainers"][0])
    assert static.pop("restartPolicy") == "Always"  # a native sidecar in the test pod
    app_pod = {
        "metadata": {},
        "spec": {"securityContext": {"runAsUser": 65532}, "containers": [{"name": "x"}]},
    }
    injected, _ = sidecar_container(app_pod, settings, "restricted")
    assert static == injected
    assert test_pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    assert "grpc_health" in test_pod["spec"]["containers"][0]["command"][2]


def test_chart_using_the_helper_as_a_dependency(tmp_path: Path) -> None:
    """An app chart with borescope as a subchart adds the sidecar with the helper; the
    rendered Deployment is valid and has the shared PID namespace and the sidecar."""
    app = tmp_path / "consumer"
    shutil.copytree(VALUES / "consumer", app)
    shutil.copytree(CHART, app / "charts" / "borescope")
    docs, _ = render({}, chart=app)
    assert not [d for d in docs if d["kind"] == "MutatingWebhookConfiguration"]
    deploy = find(docs, "Deployment", "shop")
    kubernetes_validate.validate(deploy, K8S_VERSION, strict=True)
    spec = deploy["spec"]["template"]["spec"]
    assert spec["shareProcessNamespace"] is True
    sidecar = next(c for c in spec["containers"] if c["name"] == "borescope")
    assert sidecar["securityContext"]["runAsUser"] == 10001
    assert {"name": "borescope-tmp", "emptyDir": {"sizeLimit": "64Mi"}} in spec["volumes"]


@pytest.mark.parametrize(
    "bad",
    [
        {"sidecar": {"profil": "restricted"}},
        {"sidecar": {"profile": "root"}},
        {"injector": {"timeoutSeconds": 60}},
        {"unknown": 1},
    ],
)
def test_schema_is_strict(bad: dict[str, Any]) -> None:
    """values.schema.json rejects unknown keys and out-of-range values."""
    with pytest.raises(helm.HelmValuesError, match="schema"):
        helm.Chart.load(str(CHART)).render(bad, name="bs", namespace="borescope")


def test_every_values_key_has_a_comment() -> None:
    """Each key in values.yaml is directly preceded by a comment line."""
    lines = (CHART / "values.yaml").read_text().splitlines()
    for i, line in enumerate(lines):
        stripped = line.strip()
        if not stripped or stripped.startswith("#") or stripped.startswith("- "):
            continue
        if ":" in stripped:
            prev = lines[i - 1].strip()
            assert prev.startswith("#"), f"values.yaml line {i + 1} has no comment: {line!r}"


def test_sidecar_command_matches_the_image_entrypoint(
    rendered: dict[str, tuple[list[dict[str, Any]], str]],
) -> None:
    """The injected/static container, run by sidecar/Containerfile's ENTRYPOINT, is a valid
    `borescope serve` invocation (no doubled "serve"); the injector runs `python -m
    sidecar.injector`, which the image's venv has."""
    from sidecar.__main__ import parse_args

    containerfile = (ROOT / "sidecar" / "Containerfile").read_text()
    entry_line = next(ln for ln in containerfile.splitlines() if ln.startswith("ENTRYPOINT"))
    entrypoint = json.loads(entry_line.split(None, 1)[1])
    assert entrypoint == ["borescope", "serve"]
    docs, _ = rendered["defaults"]
    settings = Settings.from_json(json.loads(find(docs, "ConfigMap")["data"]["settings.json"]))
    app_pod = {"metadata": {}, "spec": {"containers": [{"name": "x"}]}}
    container, _ = sidecar_container(app_pod, settings, "restricted")
    argv = container.get("command", entrypoint) + container.get("args", [])
    assert argv[:2] == ["borescope", "serve"] and argv.count("serve") == 1
    assert parse_args(argv[1:]).command == "serve"
    injector = find(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    assert injector["command"] == ["python", "-m", "sidecar.injector"]
    assert "/opt/borescope/bin" in containerfile  # the venv whose python has sidecar
