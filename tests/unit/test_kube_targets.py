"""Pure parts of the Kubernetes client: targets, sidecar detection, selectors, errors, config."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from tui.cli.common import add_connection_args, kube_target_of
from tui.kube import config as kube_config
from tui.kube.errors import KubeError, explain
from tui.kube.logs import parse_line
from tui.kube.shell import exit_code
from tui.kube.targets import TargetSpec, parse_target, selector_of, sidecar_of, to_target


@pytest.mark.parametrize(
    ("text", "selector", "want"),
    [
        ("pod/web-0", "", TargetSpec("pod", "web-0")),
        ("pods/web-0/app", "", TargetSpec("pod", "web-0", "app")),
        ("po/web-0", "", TargetSpec("pod", "web-0")),
        ("web-0", "", TargetSpec("pod", "web-0")),
        ("deploy/web", "", TargetSpec("deploy", "web")),
        ("deployment/web", "", TargetSpec("deploy", "web")),
        ("", "app=web,tier!=db", TargetSpec("selector", selector="app=web,tier!=db")),
    ],
)
def test_parse_target(text: str, selector: str, want: TargetSpec) -> None:
    """Every accepted spelling of a target parses to the same spec kubectl would mean."""
    assert parse_target(text, selector) == want


@pytest.mark.parametrize(
    ("text", "selector", "message"),
    [
        ("svc/web", "", "unknown target kind"),
        ("pod/", "", "has no name"),
        ("deploy/web/app", "", "malformed target"),
        ("pod/a", "app=web", "not both"),
        ("", "app", "has no '='"),
        ("", "", "no target"),
    ],
)
def test_parse_target_errors_say_how_to_write_it(text: str, selector: str, message: str) -> None:
    """A malformed target is one clear KubeError."""
    with pytest.raises(KubeError, match=message):
        parse_target(text, selector)


def test_selector_of_deployment() -> None:
    """matchLabels and every matchExpressions operator become a label-selector string."""
    dep = {
        "spec": {
            "selector": {
                "matchLabels": {"app": "web", "tier": "fe"},
                "matchExpressions": [
                    {"key": "env", "operator": "In", "values": ["prod", "stage"]},
                    {"key": "canary", "operator": "DoesNotExist"},
                    {"key": "zone", "operator": "NotIn", "values": ["b"]},
                    {"key": "team", "operator": "Exists"},
                ],
            }
        }
    }
    assert selector_of(dep) == "app=web,tier=fe,env in (prod,stage),!canary,zone notin (b),team"


def test_sidecar_detection_kinds() -> None:
    """Injected (status annotation), static (plain container) and ephemeral (running only)."""
    base = {"metadata": {"name": "p", "namespace": "ns"}, "spec": {"containers": [{"name": "app"}]}}
    assert sidecar_of(base) == ("", "", 0)
    injected = json.loads(json.dumps(base))
    injected["metadata"]["annotations"] = {"borescope.io/status": "injected"}
    injected["spec"]["containers"].append(
        {"name": "borescope", "env": [{"name": "BORESCOPE_LISTEN", "value": "127.0.0.1:9000"}]}
    )
    assert sidecar_of(injected) == ("borescope", "injected", 9000)
    static = json.loads(json.dumps(base))
    static["spec"]["containers"].append({"name": "borescope"})
    assert sidecar_of(static) == ("borescope", "static", 7777)
    eph = json.loads(json.dumps(base))
    eph["spec"]["ephemeralContainers"] = [
        {"name": "borescope-aaaaaa"},
        {"name": "borescope-bbbbbb"},
    ]
    eph["status"] = {
        "ephemeralContainerStatuses": [
            {"name": "borescope-aaaaaa", "state": {"running": {}}},
            {"name": "borescope-bbbbbb", "state": {"terminated": {"exitCode": 1}}},
        ]
    }
    assert sidecar_of(eph) == ("borescope-aaaaaa", "ephemeral", 7777)
    t = to_target(injected)
    assert (t.container, t.sidecar) == ("app", "borescope")
    with pytest.raises(KubeError, match="no container 'nope'"):
        to_target(injected, "nope")


def _api_exception(status: int, message: str) -> ApiException:
    e = ApiException(status=status, reason="x")
    e.body = json.dumps({"kind": "Status", "message": message, "code": status})
    return e


def test_explain_names_verb_resource_namespace() -> None:
    """403 names the missing permission and the can-i check; 404 names the object; others quote the API."""
    assert str(
        explain(_api_exception(403, "no"), "create", "pods/portforward", "shop", "web-0")
    ) == (
        "forbidden: needs create on pods/portforward in namespace shop "
        "(check: kubectl auth can-i create pods/portforward -n shop)"
    )
    assert str(explain(_api_exception(404, "gone"), "get", "pods", "shop", "web-0")) == (
        "pod web-0 not found in namespace shop"
    )
    assert "admission webhook denied" in str(
        explain(
            _api_exception(422, "admission webhook denied"),
            "patch",
            "pods/ephemeralcontainers",
            "s",
        )
    )
    assert explain(_api_exception(403, "x"), "get", "pods", "s").status == 403


def test_parse_line_keeps_nanosecond_stamp_and_decodes_with_replacement() -> None:
    """The RFC3339Nano stamp is kept exactly (for ordering); bad UTF-8 becomes U+FFFD."""
    line = parse_line(b"2026-11-23T07:00:01.123456789Z level=info \xff done")
    assert line.stamp == "2026-11-23T07:00:01.123456789Z"
    assert line.time is not None and line.time.microsecond == 123456
    assert line.text == "level=info \ufffd done"


def test_exec_exit_code_from_status() -> None:
    """The exec's final Status gives the exit code; no Status gives None."""
    assert exit_code(b'{"metadata":{},"status":"Success"}') == 0
    failure = {
        "status": "Failure",
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": "42"}]},
    }
    assert exit_code(json.dumps(failure).encode()) == 42
    assert exit_code(b"") is None


def test_connection_args_accept_kube_targets_and_keep_addr() -> None:
    """--target, --addr pod/NAME and -l select a kube target; --addr HOST:PORT stays direct;
    a command's own -n wins over the namespace short flag (--namespace still works)."""
    p = argparse.ArgumentParser()
    add_connection_args(p)
    p.add_argument("-n", "--lines", type=int, default=10)
    args = p.parse_args(["--addr", "pod/web-0", "-n", "5", "--namespace", "shop"])
    assert kube_target_of(args) == "pod/web-0" and args.lines == 5 and args.namespace == "shop"
    assert kube_target_of(p.parse_args(["--addr", "127.0.0.1:7777"])) == ""
    assert kube_target_of(p.parse_args(["--target", "deploy/web"])) == "deploy/web"
    before = argparse.ArgumentParser()
    before.add_argument("-l", "--long", action="store_true")
    add_connection_args(before)
    args = before.parse_args(["-l", "--selector", "app=web"])
    assert args.long is True and args.selector == "app=web"


def _kubeconfig(tmp_path: Path) -> str:
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": {"server": "https://10.1.2.3:6443"}}],
        "users": [{"name": "u", "user": {"token": "t0k"}}],
        "contexts": [
            {"name": "prod", "context": {"cluster": "c", "user": "u", "namespace": "payments"}},
            {"name": "dev", "context": {"cluster": "c", "user": "u"}},
        ],
        "current-context": "dev",
    }
    path = tmp_path / "kubeconfig"
    path.write_text(json.dumps(doc))
    return str(path)


def test_kubeconfig_contexts_and_private_configuration(tmp_path: Path) -> None:
    """--context picks the context and its namespace; -n overrides; an unknown context
    lists the real ones; the global default configuration is never touched."""
    before = k8s.Configuration.get_default_copy().host
    path = _kubeconfig(tmp_path)
    prod = kube_config.load(context="prod", kubeconfig=path, environ={})
    assert (prod.context, prod.namespace) == ("prod", "payments")
    assert prod.configuration.host == "https://10.1.2.3:6443"
    dev = kube_config.load(kubeconfig=path, environ={}, namespace="x")
    assert (dev.context, dev.namespace) == ("dev", "x")
    assert dev.api_client is not prod.api_client
    with pytest.raises(KubeError, match=r"no context 'nope'.*contexts: dev, prod"):
        kube_config.load(context="nope", kubeconfig=path, environ={})
    assert k8s.Configuration.get_default_copy().host == before


def test_in_cluster_config(tmp_path: Path) -> None:
    """With KUBERNETES_SERVICE_HOST set: the service-account token, CA and namespace."""
    (tmp_path / "token").write_text("sa-token")
    (tmp_path / "ca.crt").write_text("not checked until used")
    (tmp_path / "namespace").write_text("team-a\n")
    env = {"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"}
    c = kube_config.load(environ=env, sa_dir=str(tmp_path))
    assert c.namespace == "team-a" and c.configuration.host == "https://10.96.0.1:443"
    assert c.configuration.api_key["BearerToken"].endswith("sa-token")


def test_missing_kubeconfig_says_what_to_do(tmp_path: Path) -> None:
    """No kubeconfig and no cluster: the message offers --kubeconfig, KUBECONFIG, --addr."""
    with pytest.raises(KubeError, match=r"--kubeconfig.*KUBECONFIG.*--addr"):
        kube_config.load(kubeconfig=str(tmp_path / "missing"), environ={})
